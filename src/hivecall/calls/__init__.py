"""Calls: records of voice calls with agents, their phases and transcript, and call modes."""

from hivecall.calls.records import CallLineIn, Calls, CallView
from hivecall.calls.state import PHASES, TERMINAL

__all__ = ["PHASES", "TERMINAL", "CallLineIn", "CallView", "Calls"]
