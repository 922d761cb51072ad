"""The flows this process serves, and every older version a live call may still be on."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from flows.loader import FlowDefinitionError, builtin_flows, parse_flow, parse_toml
from flows.model import Flow
from ivr.time_budget import POOL_ACQUIRE_S
from storage.evidence import load_flow_definition, register_flow_version
from storage.ledger import chained

__all__ = ["DEFAULT_FLOW", "FlowCatalog", "UnknownFlowVersion", "deployed_flows", "purpose_rules"]

DEFAULT_FLOW = "consent-line"


def deployed_flows(flows_dir: Path | None) -> dict[str, Flow]:
    """The flows to serve: the built-in ones, each replaced or joined by ``flows_dir/*.toml``."""
    flows = builtin_flows()
    if flows_dir is not None:
        for path in sorted(flows_dir.glob("*.toml")):
            try:
                flow = parse_toml(path.read_text(encoding="utf-8"))
            except FlowDefinitionError as exc:
                raise FlowDefinitionError(f"{exc.name} ({path})", exc.problems) from None
            flows[flow.name] = flow
    if DEFAULT_FLOW not in flows:
        raise FlowDefinitionError(DEFAULT_FLOW, ["the default flow is missing"])
    return flows


def purpose_rules(flows: dict[str, Flow]) -> dict[str, int | None]:
    rules: dict[str, int | None] = {}
    for flow in flows.values():
        for key, purpose in flow.purposes.items():
            rules[key] = rules.get(key) or purpose.opt_out_days
    return rules


class UnknownFlowVersion(Exception):
    def __init__(self, version: str) -> None:
        super().__init__(f"flow version {version} is neither deployed nor stored")
        self.version = version


class FlowCatalog:
    """Deployed flows by name; any version ever served by its content hash.

    A call keeps the version it started on. After a deploy, the old version is no
    longer among the deployed flows, so it is read back from ``flow_versions`` (where
    it was stored before it was first served) and kept for the rest of those calls.
    """

    def __init__(self, deployed: dict[str, Flow], number_flows: dict[str, str] | None = None) -> None:
        self._deployed = dict(deployed)
        self._by_version = {flow.version: flow for flow in deployed.values()}
        self._number_flows = dict(number_flows or {})
        unknown = sorted(set(self._number_flows.values()) - set(self._deployed))
        if unknown:
            raise FlowDefinitionError(", ".join(unknown), ["IVR_NUMBER_FLOWS names a flow that is not deployed"])

    def for_call(self, flow_name: str | None, dialed: str) -> Flow | None:
        """The flow the voice URL names, else the one for the dialed number, else the default."""
        if flow_name:
            return self.named(flow_name)
        return self._deployed[self._number_flows.get(dialed, DEFAULT_FLOW)]

    @property
    def default(self) -> Flow:
        return self._deployed[DEFAULT_FLOW]

    def named(self, name: str) -> Flow | None:
        return self._deployed.get(name)

    @property
    def deployed(self) -> dict[str, Flow]:
        return dict(self._deployed)

    def purpose_rules(self) -> dict[str, int | None]:
        """Every purpose the deployed flows offer, with its opt-out window (None: opt-in)."""
        return purpose_rules(self._deployed)

    async def register(self, pool: asyncpg.Pool) -> None:
        """Store every deployed version before any call can be served on it."""
        async with pool.acquire() as conn, chained(conn) as chain:
            for flow in self._deployed.values():
                await register_flow_version(chain, flow)

    async def version(self, version: str, pool: asyncpg.Pool) -> Flow:
        flow = self._by_version.get(version)
        if flow is None:
            async with pool.acquire(timeout=POOL_ACQUIRE_S) as conn:  # on a webhook's path
                definition = await load_flow_definition(conn, version)
            if definition is None:
                raise UnknownFlowVersion(version)
            flow = parse_flow(definition)
            self._by_version[version] = flow
        return flow
