"""Plumbing: one module per concept or on-disk format. Never imports porcelain or click."""
