"""kinds/nonlinear"""
