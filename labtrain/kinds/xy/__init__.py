"""kinds/xy"""
