"""Parley Studio: a local web page where designers edit an NPC's profile, talk to it through the real
protocol, and run its behaviour tests (`parley studio`). Standard library only: no runtime dependency."""
