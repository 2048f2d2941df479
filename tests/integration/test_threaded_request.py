"""bot.threaded_request against the Telegram simulator: the checkout desk's transport raises the
same PTB errors as HTTPXRequest for every fault class, and never puts the bot token in them."""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest
from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.threaded_request import ThreadedRequest
from sim.telegram import TelegramSim
from tests.support.ports import refusing_port

USER = 4201
METHOD = "sendMessage"


def call(url: str, token: str, read_timeout: float = 5.0) -> TelegramError | None:
    """One sendMessage through a Bot on ThreadedRequest: the error it raised, or None."""
    async def scenario() -> TelegramError | None:
        bot = Bot(token, base_url=f"{url}/bot", request=ThreadedRequest(2, connect_timeout=1,
                                                                        read_timeout=read_timeout))
        await bot.request.initialize()      # no getMe: the call under test is the only one
        try:
            await bot.send_message(USER, "hello")
        except TelegramError as exc:
            return exc
        finally:
            await bot.request.shutdown()
        return None

    return asyncio.run(scenario())


FAULTS: dict[str, tuple[Callable[[TelegramSim], None], type[TelegramError]]] = {
    "429": (lambda t: t.fail_next(METHOD, 1, status=429, retry_after=3), RetryAfter),
    "500": (lambda t: t.fail_next(METHOD, 1, status=500), NetworkError),
    "400": (lambda t: t.fail_next(METHOD, 1, status=400), BadRequest),
    "reset before": (lambda t: t.reset_next(METHOD, 1), NetworkError),
    "reset after": (lambda t: t.reset_next(METHOD, 1, performed=True), NetworkError),
    "dropped answer": (lambda t: t.drop_next_response(METHOD, 1), NetworkError),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_class_raises_ptbs_own_error(telegram: TelegramSim, fault: str) -> None:
    telegram.user_sends(USER, "/start")
    script, expected = FAULTS[fault]
    script(telegram)
    error = call(telegram.url, telegram.token)
    assert isinstance(error, expected), repr(error)
    assert telegram.token not in str(error)
    if expected is RetryAfter:
        assert isinstance(error, RetryAfter) and error.retry_after in (3, dt.timedelta(seconds=3)), repr(error)
    assert call(telegram.url, telegram.token) is None, "the next call goes through"


def test_an_answer_later_than_the_read_timeout_is_timed_out(telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/start")
    telegram.slow(METHOD, 1.0)
    assert isinstance(call(telegram.url, telegram.token, read_timeout=0.2), TimedOut)


def test_the_token_is_in_no_error_of_a_connection_never_made() -> None:
    token = "123456:SECRET-never-in-an-error"
    with refusing_port() as port:
        error = call(f"http://127.0.0.1:{port}", token)
    assert isinstance(error, NetworkError)
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None:
        chain.append(current)
        current = current.__cause__ or current.__context__
    assert all("SECRET" not in str(e) and "SECRET" not in repr(e) for e in chain), [str(e) for e in chain]
