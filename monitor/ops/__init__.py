"""Ops changes with one home each, called by the CLI, the HTTP API and the service.

Functions are ``async def f(session, *, ...)``: the caller opens the session and
commits, so one request or command can combine several changes in one transaction.
"""
