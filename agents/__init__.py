"""Registered agents. Adding an agent: create agents/<name>/ and add its AGENT here."""

from agents.access import AGENT as ACCESS
from agents.deploy import AGENT as DEPLOY
from agents.incident import AGENT as INCIDENT
from bot.agent import Agent

AGENTS: list[Agent] = [DEPLOY, INCIDENT, ACCESS]
