"""Subjects and their visit schedule."""
