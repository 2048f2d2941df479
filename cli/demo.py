"""`kiebot demo`: the whole system on this machine with no account anywhere.

Embedded Postgres, the KIE and Telegram simulators, a front door standing in for the load
balancer, two `kiebot run` processes (leader and standby) and scripted users who each make
one image through the menu and one with /imagine (free: the daily free tier). Midway the leader
is killed (SIGKILL) and the takeover time printed. Then a paying user tops up with Telegram
Stars, makes a paid image, and has a paid job fail at KIE (its credits come back). Exits 0
only if every job was delivered exactly once, every charge is exactly its price, and the
ledger check is clean.
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sim.cluster import (
    KiebotProcess,
    embedded_admin_url,
    free_port,
    fresh_database,
    instance_env,
    sim_endpoints,
    spawn_kiebot,
    stop_all,
    wait_for_leader,
    wait_until,
)
from sim.front_door import FrontDoor
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, PaymentOutcome, TelegramSim
from storage import ledger
from storage.db import Database
from storage.jobs import Job, job_events, recent_jobs

DEMO_DB = "kiebot_demo"
STEP_TIMEOUT_S = 60.0
FREEZE_SETTLE_S = 0.1
# The demo's pace: KIE polled every half second, an unfinished delivery claim trusted for 2 s.
DEMO_KNOBS = {"KIEBOT_POLL_BASE_S": "0.5", "KIEBOT_DELIVERY_GRACE_S": "2"}
PAYING_USER = 9100
QUEUE_USER = 9200
PAID_MODEL = "google/nano-banana"
PROMPTS = ["a lighthouse on a cliff at dawn", "a red fox reading a newspaper", "a tiny robot watering tomatoes",
           "an origami crane over Tokyo", "a cup of cocoa on a snowy windowsill", "a whale made of clouds"]


def has_button(label: str) -> Callable[[list[ChatMessage]], bool]:
    return lambda chat: any(label in b[0] for m in chat if m.from_bot for row in m.buttons for b in row)


def photo_count(chat: list[ChatMessage]) -> int:
    return sum(1 for m in chat if m.from_bot and m.media == "photo")


def script_user(telegram: TelegramSim, user: int, prompts: tuple[str, str], errors: list[str]) -> None:
    """One user: an image through the menu, then one with /imagine."""
    try:
        telegram.user_sends(user, "/start")
        telegram.wait_for_chat(user, has_button("Create image"), STEP_TIMEOUT_S)
        telegram.user_presses(user, "Create image")
        telegram.wait_for_chat(user, has_button("Z-Image"), STEP_TIMEOUT_S)
        telegram.user_presses(user, "Z-Image")
        telegram.wait_for_chat(user, lambda c: bool(c and c[-1].from_bot and "describe" in (c[-1].text or "")),
                               STEP_TIMEOUT_S)
        telegram.user_sends(user, prompts[0])
        telegram.wait_for_chat(user, has_button("4:3"), STEP_TIMEOUT_S)
        telegram.user_presses(user, "4:3")
        telegram.wait_for_chat(user, lambda c: photo_count(c) >= 1, STEP_TIMEOUT_S)
        telegram.user_sends(user, f"/imagine {prompts[1]} --ar 16:9")
        telegram.wait_for_chat(user, lambda c: photo_count(c) >= 2, STEP_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - reported in the summary, never a traceback
        errors.append(f"user {user}: {exc}")


def has_start_button(chat: list[ChatMessage]) -> bool:
    """The newest bot message carries a ✅ button (a paid job waiting for its confirmation)."""
    last = next((m for m in reversed(chat) if m.from_bot), None)
    return last is not None and any(b[0].startswith("✅") for row in last.buttons for b in row)


def script_paying_user(telegram: TelegramSim, kie: KieSim, user: int, errors: list[str]) -> None:
    """A top-up with Stars, one paid image, and one paid job KIE fails (credits returned)."""
    try:
        telegram.user_sends(user, "/buy")
        telegram.wait_for_chat(user, lambda c: any(m.from_bot and m.invoice for m in c), STEP_TIMEOUT_S)
        attempt = telegram.user_pays(user)
        if telegram.wait_for_payment(attempt.query_id, STEP_TIMEOUT_S).outcome is not PaymentOutcome.PAID:
            raise RuntimeError("the Stars payment did not go through")
        telegram.wait_for_chat(user, lambda c: any("Payment received" in (m.text or "") for m in c), STEP_TIMEOUT_S)
        telegram.user_sends(user, f"/imagine a paper boat on a pond --model {PAID_MODEL}")
        telegram.wait_for_chat(user, has_start_button, STEP_TIMEOUT_S)
        telegram.user_presses(user, "✅ Generate")
        telegram.wait_for_chat(user, lambda c: photo_count(c) >= 1, STEP_TIMEOUT_S)
        kie.script_next(Fate(outcome="fail", fail_msg="The model could not draw this"))
        telegram.user_sends(user, f"/imagine a storm inside a teacup --model {PAID_MODEL}")
        telegram.wait_for_chat(user, has_start_button, STEP_TIMEOUT_S)
        telegram.user_presses(user, "✅ Generate")
        telegram.wait_for_chat(user, lambda c: any("returned" in (m.text or "") for m in c if m.from_bot),
                               STEP_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - reported in the summary, never a traceback
        errors.append(f"user {user}: {exc}")


def script_queue_user(telegram: TelegramSim, db: Database, user: int, errors: list[str]) -> None:
    """Three /imagine in a row: one runs, two wait their turn in the queue; the third is cancelled
    from its progress message before it starts."""
    try:
        def jobs_at_least(count: int) -> Callable[[], bool]:
            return lambda: len(recent_jobs(db, user)) >= count

        for n, prompt in enumerate(("a snail racing a leaf", "a castle made of bread", "a very tired moon")):
            telegram.user_sends(user, f"/imagine {prompt}")
            wait_until(jobs_at_least(n + 1), STEP_TIMEOUT_S, f"job {n + 1} of user {user}")
        third = recent_jobs(db, user)[0]
        if third.state.value == "queued" and third.progress_message_id:
            telegram.user_presses(user, "Cancel", message_id=third.progress_message_id)
        wait_until(lambda: all(j.terminal for j in recent_jobs(db, user)), STEP_TIMEOUT_S * 2,
                   f"user {user}'s queue to finish")
    except Exception as exc:  # noqa: BLE001 - reported in the summary, never a traceback
        errors.append(f"user {user}: {exc}")


def midway(db: Database, telegram: TelegramSim, user_ids: list[int]) -> bool:
    """Some results delivered, some jobs waiting at KIE, none between claim and record, and none
    between `submitting` and KIE's answer: a job cut there is never submitted twice (KIE may
    have it), so it waits for a callback or its deadline, longer than the demo does."""
    states = [j.state.value for u in user_ids for j in recent_jobs(db, u)]
    return (sum(photo_count(telegram.chat(u)) for u in user_ids) >= max(1, len(user_ids) // 2)
            and "submitted" in states and not {"submitting", "succeeded", "delivering"} & set(states))


def frozen_midway(leader: KiebotProcess, midway_now: Callable[[], bool]) -> bool:
    """Whether the leader is stopped (SIGSTOP) at a moment `midway_now` holds. Checked while the
    process cannot move a job, so the SIGKILL that follows lands in the state that was checked;
    otherwise it is let go on (SIGCONT). The pause lets a statement it sent just before it stopped
    finish at the server before the check reads."""
    if not midway_now():
        return False
    leader.proc.send_signal(signal.SIGSTOP)
    time.sleep(FREEZE_SETTLE_S)
    if midway_now():
        return True
    leader.proc.send_signal(signal.SIGCONT)
    return False


def render_chat(chat: list[ChatMessage]) -> list[str]:
    lines = []
    for m in chat:
        who = "bot " if m.from_bot else "user"
        body = f"[{m.media}] {m.caption or ''}" if m.media else (m.text or "")
        buttons = " ".join(f"[{b[0]}]" for row in m.buttons for b in row)
        lines.append(f"  {who}: {body.strip()} {buttons}".rstrip())
    return lines


def chain(db: Database, job: Job) -> str:
    return " → ".join(e["to_state"] + (f"@{e['epoch']}" if e["epoch"] is not None else "")
                      for e in job_events(db, job.id))


def run_demo(out_dir: str = "demo-output", users: int = 3, kill_leader: bool = True, data_dir: str = ".kiebot") -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print("kiebot demo: starting embedded Postgres, simulators and two instances…", flush=True)
    database_url = fresh_database(embedded_admin_url(Path(data_dir) / "pg"), DEMO_DB)
    db = Database(database_url)
    ports = [free_port(), free_port()]
    instances: list[KiebotProcess] = []
    with KieSim(default_duration_s=1.5) as kie, TelegramSim() as telegram:
        door = FrontDoor([f"http://127.0.0.1:{p}" for p in ports]).start()
        try:
            for c, port in zip("ab", ports, strict=True):
                env = instance_env(database_url, **sim_endpoints(kie, telegram), port=port, instance_id=f"demo-{c}",
                                   public_url=door.url, **DEMO_KNOBS)
                instances.append(spawn_kiebot(f"demo-{c}", env, out / f"demo-{c}.log"))
            leader = wait_for_leader(instances, 60)
            print(f"leader: {leader.name}; standby: {next(i.name for i in instances if i is not leader)}")
            user_ids = [9001 + n for n in range(users)]
            errors: list[str] = []
            threads = [threading.Thread(target=script_user,
                                        args=(telegram, u, (PROMPTS[(2 * n) % 6], PROMPTS[(2 * n + 1) % 6]), errors))
                       for n, u in enumerate(user_ids)]
            for t in threads:
                t.start()
            takeover_s = None
            if kill_leader:
                standby = next(i for i in instances if i is not leader)
                wait_until(lambda: frozen_midway(leader, lambda: midway(db, telegram, user_ids)),
                           STEP_TIMEOUT_S * 2, "the middle of the run")
                killed_at = time.monotonic()
                leader.proc.send_signal(signal.SIGKILL)
                leader.proc.wait()
                wait_until(standby.active, 30, "the standby to take over")
                takeover_s = time.monotonic() - killed_at
                print(f"killed leader {leader.name} (SIGKILL); {standby.name} took over in {takeover_s:.2f}s",
                      flush=True)
            for t in threads:
                t.join()
            print("a paying user: a Stars top-up, a paid image, a paid job that fails…", flush=True)
            script_paying_user(telegram, kie, PAYING_USER, errors)
            print("a user asks for three images in a row and cancels the last one while it waits…", flush=True)
            script_queue_user(telegram, db, QUEUE_USER, errors)
            everyone = [*user_ids, PAYING_USER, QUEUE_USER]
            try:
                wait_until(lambda: all(j.terminal for u in everyone for j in recent_jobs(db, u)), 60,
                           "every job to finish")
            except TimeoutError:
                errors.extend(f"job {j.id} of user {u} did not finish: {chain(db, j)}"
                              for u in everyone for j in recent_jobs(db, u) if not j.terminal)
            return report(db, telegram, user_ids, out, errors, takeover_s)
        finally:
            stop_all(instances, timeout=20)
            door.stop()
            db.close()


def report(db: Database, telegram: TelegramSim, user_ids: list[int], out: Path, errors: list[str],
           takeover_s: float | None) -> int:
    jobs = [j for u in user_ids for j in reversed(recent_jobs(db, u))]
    duplicates = lost = 0
    for user in user_ids:
        chat = telegram.chat(user)
        print(f"\n— chat with user {user} —")
        print("\n".join(render_chat(chat)))
        photos = [m for m in chat if m.from_bot and m.media == "photo"]
        for n, m in enumerate(photos, 1):
            (out / f"user{user}-{n}.png").write_bytes(telegram.file_bytes(m.file_id or ""))
        user_jobs = [j for j in jobs if j.user_id == user]
        duplicates += max(0, len(photos) - len(user_jobs))
    print("\n— delivery chains (state@epoch) —")
    for job in jobs:
        print(f"  job {job.id} ({job.input.get('prompt')!r}): {chain(db, job)}")
        if job.state.value != "delivered" or job.outcome != "success":
            lost += 1
    expected = 2 * len(user_ids)
    delivered = sum(1 for j in jobs if j.state.value == "delivered" and j.outcome == "success")
    print(f"\nsummary: jobs created {len(jobs)} (expected {expected}), delivered {delivered}, "
          f"duplicates {duplicates}, lost {lost}" + (f", takeover {takeover_s:.2f}s" if takeover_s else ""))
    print(f"images written to {out}/")
    money_ok = report_money(db, telegram, errors) and report_queue(db, telegram, errors)
    for e in errors:
        print(f"problem: {e}")
    ok = (len(jobs) == expected and delivered == expected and duplicates == 0 and lost == 0 and money_ok
          and not errors)
    print("RESULT: every job delivered exactly once" if ok else "RESULT: FAILED")
    return 0 if ok else 1


def report_money(db: Database, telegram: TelegramSim, errors: list[str]) -> bool:
    """The paying user's chat and ledger, and the whole ledger's check."""
    from config.money import format_credits

    print(f"\n— chat with the paying user {PAYING_USER} —")
    print("\n".join(render_chat(telegram.chat(PAYING_USER))))
    jobs = list(reversed(recent_jobs(db, PAYING_USER)))
    wallet = ledger.wallet(db, PAYING_USER)
    payments = ledger.user_payments(db, PAYING_USER)
    payment = payments[0] if len(payments) == 1 else None
    paid = [j for j in jobs if j.state.value == "delivered" and j.outcome == "success"]
    failed = [j for j in jobs if j.outcome == "failure"]
    print("\n— money —")
    for m in reversed(ledger.movements(db, PAYING_USER)):
        change = "(paid from the hold)" if m.kind is ledger.EntryKind.CAPTURE else format_credits(m.amount)
        what = f"job {m.job_id} {m.model}" if m.job_id else m.charge_id or m.reason or ""
        print(f"  {m.kind.value:<9} {change:>20}  {what}")
    expected = (payment.credits if payment else 0) - sum(j.price for j in paid)
    print(f"  balance {format_credits(wallet.available)} (held {format_credits(wallet.held)}); "
          f"expected {format_credits(expected)}")
    check = ledger.check(db)
    print(f"  ledger check: {'clean' if check.clean else 'VIOLATIONS'} ({check.entries} entries)")
    for violation in check.violations:
        print(f"  ledger violation: {violation}")
    ok = (payment is not None and len(paid) == 1 and paid[0].price > 0 and len(failed) == 1
          and wallet.available == expected and wallet.held == 0 and check.clean)
    if not ok:
        errors.append("the money does not add up (see above)")
    return ok


def report_queue(db: Database, telegram: TelegramSim, errors: list[str]) -> bool:
    """The queue user's chat: two images delivered in order, one job cancelled while queued."""
    print(f"\n— chat with the queue user {QUEUE_USER} —")
    print("\n".join(render_chat(telegram.chat(QUEUE_USER))))
    jobs = list(reversed(recent_jobs(db, QUEUE_USER)))
    print("\n— the queue user's jobs (state@epoch) —")
    for job in jobs:
        print(f"  job {job.id} ({job.input.get('prompt')!r}): {chain(db, job)}")
    states = [(j.state.value, j.outcome) for j in jobs]
    ok = (states == [("delivered", "success"), ("delivered", "success"), ("cancelled", None)]
          and photo_count(telegram.chat(QUEUE_USER)) == 2 and any(
              e["to_state"] == "queued" for j in jobs for e in job_events(db, j.id)))
    if not ok:
        errors.append(f"the queue user's jobs ended {states}")
    # One message per job: a delivered job's progress message is gone from the chat.
    shown = {m.message_id for m in telegram.chat(QUEUE_USER)}
    left = [j.id for j in jobs if j.state.value == "delivered" and j.progress_message_id in shown]
    if left:
        errors.append(f"progress messages left in the queue user's chat by jobs {left}")
    return ok and not left
