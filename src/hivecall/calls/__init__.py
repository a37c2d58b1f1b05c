"""Calls: records of voice calls with agents, their phases and transcript, and call modes."""

from hivecall.calls.records import CallLineIn, Calls, CallView, Failed
from hivecall.calls.state import PHASES, TERMINAL
from hivecall.calls.sweeper import Sweeper

__all__ = ["PHASES", "TERMINAL", "CallLineIn", "CallView", "Calls", "Failed", "Sweeper"]
