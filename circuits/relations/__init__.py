"""Bundled relation datasets in the LRE JSON schema (package data)."""
