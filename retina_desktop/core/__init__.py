"""The records, errors, files and settings every layer shares. Imports neither tkinter nor tensorflow."""
