"""kinds/resistor"""
