"""R1–R10 as pure functions: each rule on both sides of its line, and every refusal names its rule."""

from __future__ import annotations

from dataclasses import replace

from inbox.permissions import Party, PracticeFlags, check_exchange

ON = PracticeFlags(client_messaging_enabled=True, team_messaging_enabled=True)

CLIN = Party(1, "team", frozenset({"clinician"}), True)
CLIN2 = Party(2, "team", frozenset({"clinician"}), True)
SUP = Party(3, "team", frozenset({"supervisor"}), True)
BILLER = Party(4, "team", frozenset({"biller"}), True)
SCHED = Party(5, "team", frozenset({"scheduler"}), True)
MANAGER = Party(6, "team", frozenset({"practice_manager"}), True)
SUP_BILLER = Party(7, "team", frozenset({"supervisor", "biller"}), True)
CLIENT = Party(10, "client", frozenset(), True, True, client_id=10, primary_clinician_id=1)
CONTACT = Party(11, "contact", frozenset(), True, True, client_id=10, primary_clinician_id=1)
OTHER_CLIENT = Party(20, "client", frozenset(), True, True, client_id=20, primary_clinician_id=2)
CLIENTS = {10: CLIENT, 20: OTHER_CLIENT}


def check(actor, *others, flags=ON, grants=(), prior=(), clients=None):
    return check_exchange(
        actor,
        list(others),
        flags=flags,
        grants=set(grants),
        clients=clients or CLIENTS,
        prior_writers=set(prior),
    )


def rule_of(refusal):
    return None if refusal is None else (refusal.rule, refusal.code)


def test_r1_client_messaging_off_at_practice_blocks_clients_not_team():
    off = PracticeFlags(client_messaging_enabled=False, team_messaging_enabled=True)
    assert rule_of(check(CLIN, CLIENT, flags=off)) == ("R1", "client_messaging_off")
    assert check(CLIN, CLIN2, flags=off) is None
    assert check(CLIN, CLIENT) is None


def test_r1_team_messaging_off_blocks_everyone():
    off = PracticeFlags(client_messaging_enabled=True, team_messaging_enabled=False)
    assert rule_of(check(CLIN, CLIN2, flags=off)) == ("R1", "team_messaging_off")


def test_r3_team_member_takes_part_only_while_enabled():
    disabled = replace(CLIN2, messaging_enabled=False)
    assert rule_of(check(CLIN, disabled)) == ("R3", "team_member_messaging_disabled")
    assert rule_of(check(disabled, CLIN)) == ("R3", "team_member_messaging_disabled")
    assert check(CLIN, CLIN2) is None


def test_r4_client_needs_messaging_and_portal_access():
    assert rule_of(check(CLIN, replace(CLIENT, messaging_enabled=False))) == (
        "R4",
        "client_messaging_disabled",
    )
    assert rule_of(check(CLIN, replace(CLIENT, portal_access=False))) == ("R4", "client_messaging_disabled")
    assert check(CLIN, CLIENT) is None


def test_r5_clinician_needs_access_to_the_client():
    assert rule_of(check(CLIN2, CLIENT)) == ("R5", "clinician_without_client_access")
    assert check(CLIN2, CLIENT, grants=[(2, 10)]) is None
    assert check(CLIN, CLIENT) is None  # the primary clinician always has access


def test_r6_billers_schedulers_managers_may_message_any_client():
    for member in (BILLER, SCHED, MANAGER):
        assert check(member, CLIENT) is None
        assert check(member, OTHER_CLIENT) is None


def test_r7_supervisor_needs_access_or_biller_or_scheduler_role():
    assert rule_of(check(SUP, CLIENT)) == ("R7", "supervisor_without_client_access")
    assert check(SUP, CLIENT, grants=[(3, 10)]) is None
    assert check(SUP_BILLER, CLIENT) is None


def test_r8_client_starts_only_with_primary_clinician_and_office_roles():
    assert check(CLIENT, CLIN) is None
    for member in (BILLER, SCHED, MANAGER):
        assert check(CLIENT, member) is None
    # Another clinician, even with access, must write first.
    refusal = check(CLIENT, CLIN2, grants=[(2, 10)])
    assert rule_of(refusal) == ("R8", "client_may_not_start_with_this_clinician")
    assert check(CLIENT, CLIN2, grants=[(2, 10)], prior=[2]) is None


def test_r8_client_may_answer_clinician_who_wrote_first_only_with_access():
    # Having written first does not replace access (R5).
    assert rule_of(check(CLIENT, CLIN2, prior=[2])) == ("R5", "clinician_without_client_access")


def test_r8_client_may_start_with_supervisor_who_has_access():
    assert check(CLIENT, SUP, grants=[(3, 10)]) is None
    assert rule_of(check(CLIENT, SUP)) == ("R7", "supervisor_without_client_access")


def test_r9_enabled_team_members_message_each_other():
    assert check(BILLER, CLIN) is None
    assert check(SUP, CLIN2, SCHED) is None


def test_r10_contact_takes_part_under_the_clients_rules():
    assert check(CLIN, CONTACT) is None
    assert check(CONTACT, CLIN) is None
    assert rule_of(check(CONTACT, CLIN2, grants=[(2, 10)])) == (
        "R8",
        "client_may_not_start_with_this_clinician",
    )
    disabled_client = {10: replace(CLIENT, messaging_enabled=False), 20: OTHER_CLIENT}
    assert rule_of(check(CLIN, CONTACT, clients=disabled_client)) == ("R4", "client_messaging_disabled")


def test_r10_one_client_file_per_conversation_and_a_team_member_in_it():
    assert rule_of(check(BILLER, CLIENT, OTHER_CLIENT)) == ("R10", "one_client_per_conversation")
    assert rule_of(check(CLIENT, CONTACT)) == ("R10", "team_member_required")
    assert check(CLIN, CLIENT, CONTACT) is None


def test_every_member_of_a_client_conversation_must_be_allowed():
    # A biller may write to the client, but bringing in a clinician without access is refused.
    assert rule_of(check(BILLER, CLIENT, CLIN2)) == ("R5", "clinician_without_client_access")
    assert check(BILLER, CLIENT, CLIN) is None
