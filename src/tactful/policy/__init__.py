"""Decide: the policy file, its condition language, and the engine."""

from tactful.policy.engine import Decision, PolicyEngine
from tactful.policy.model import Policy, PolicyError, load_policy

__all__ = ["Decision", "Policy", "PolicyEngine", "PolicyError", "load_policy"]
