"""Conformance suites: one test class per contract, subclassed once per implementation (Haystack style)."""
