"""Noisy neighbour on the emulator (issue 11, part 3): one tenant's storm does not
delay another tenant's commands.

Tenant A: 200 browsers drop and reconnect at once while 50 consumers follow
every browser (about 20,000 presence posts). Tenant B: command round trips, one
after the other, before and during A's storm. The real template and handlers,
the commands on their own lane: every B command completes, in order, while
A's presence is still being delivered, and then every A consumer sees every
A browser back online. No timing is asserted (that is ``make bench``'s part).
"""

from __future__ import annotations

from bench.noisy import NoisyConfig, noisy_neighbour
from emulator.testing import running_gateway


async def test_a_tenants_reconnect_storm_does_not_hold_back_another_tenants_commands() -> None:
    config = NoisyConfig(storm_browsers=200, storm_consumers=50, round_trips=10)
    async with running_gateway() as gw:
        outcome = await noisy_neighbour(gw.url, gw.token, config)
    # Every B command completed, each answered by its own result, in the order sent
    assert len(outcome.sent) == 2 * config.round_trips
    assert outcome.results == outcome.sent
    # And B's storm-phase commands all completed while A's presence was still on its way
    assert outcome.a_pending_when_b_done
    # And A's consumers, in the end, each saw every A browser back online
    assert outcome.a_settled
