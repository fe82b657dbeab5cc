"""Helpers shared by the LeNet-5 book's chapters, tests and tools."""
