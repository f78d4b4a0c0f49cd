"""Simulated classroom devices running a timetable of scripted lessons, with ground truth."""
