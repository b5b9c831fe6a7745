"""Bus contracts: the payloads (envelope `data`) of every subject, shared by producers and consumers.

Subjects and their versions are part of the public contract; see docs/subjects.md (generated).
"""
