"""kinds/dnpu"""
