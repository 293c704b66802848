"""The dict reading of the jobs' results, kept for one version now that they return typed records.

A job returns a dataclass (:class:`~circuits.jobs.channels.ChannelsReport`,
:class:`~circuits.jobs.reuse_report.ReuseReport`,
:class:`~circuits.jobs.reuse_test_record.ReuseTestRecord`,
:class:`~circuits.jobs.job_summary.JobSummary`, ...) whose ``to_dict()`` is
the JSON it stores, unchanged from when the jobs returned that dict, and
whose ``from_dict()`` reads it back. Until 0.4 the jobs returned the dicts
themselves; :class:`DictAccess` keeps ``result["key"]`` working for one
version, with a :class:`DeprecationWarning`. It lives in
:mod:`circuits.records.stored` (so that the torch-free records of
:mod:`circuits.compare` have it too) and is importable from here as before.
"""

from __future__ import annotations

from circuits.records.stored import DictAccess

__all__ = ["DictAccess"]
