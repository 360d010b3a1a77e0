"""kinds/nonreciprocal"""
