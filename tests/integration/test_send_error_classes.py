"""What a failed Bot API call means for the send (bot.sender.classify_send_error), for transport
failures raised by PTB's real HTTPXRequest against the Telegram simulator or a closed port.

A request that never got a connection (refused, connect timeout, every pooled connection busy)
was not written: it is safe to send again (RETRY). One whose answer did not come in time may
have been performed (UNKNOWN).
"""
from __future__ import annotations

import asyncio

import pytest
from telegram import Bot
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from actors.ports import SendOutcome
from bot.sender import classify_send_error
from sim.telegram import TelegramSim
from tests.support.ports import refusing_port

USER = 4101


def bot_for(url: str, token: str, **request: float | int) -> Bot:
    return Bot(token, base_url=f"{url}/bot", request=HTTPXRequest(**request))  # type: ignore[arg-type]


async def failure_of(bot: Bot, text: str = "hello") -> TelegramError:
    with pytest.raises(TelegramError) as caught:
        await bot.send_message(USER, text)
    return caught.value


def test_a_request_waiting_for_a_pooled_connection_was_not_sent(telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/start")     # the chat exists
    telegram.slow("sendMessage", 1.0)

    async def scenario() -> TelegramError:
        bot = bot_for(telegram.url, telegram.token, connection_pool_size=1, pool_timeout=0.05)
        async with bot:
            first = asyncio.create_task(bot.send_message(USER, "first"))
            # The one connection is on the wire once the simulator holds the first request.
            await asyncio.to_thread(telegram.wait_for_arrival, "sendMessage")
            error = await failure_of(bot, "second")
            await first
            return error

    error = asyncio.run(scenario())
    assert classify_send_error(error).outcome is SendOutcome.RETRY
    texts = [m.text for m in telegram.chat(USER) if m.from_bot]
    assert texts == ["first"], "the request refused for want of a connection was never sent"


def test_a_request_to_a_closed_port_was_not_sent() -> None:
    async def scenario(port: int) -> TelegramError:
        bot = bot_for(f"http://127.0.0.1:{port}", "1:closed", connect_timeout=1.0)
        with pytest.raises(TelegramError) as caught:
            await bot.initialize()          # getMe
        await bot.shutdown()
        return caught.value

    with refusing_port() as port:
        error = asyncio.run(scenario(port))
    assert classify_send_error(error).outcome is SendOutcome.RETRY


def test_an_answer_that_did_not_come_in_time_leaves_the_send_unknown(telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/start")
    telegram.slow("sendMessage", 1.0)

    async def scenario() -> TelegramError:
        async with bot_for(telegram.url, telegram.token, read_timeout=0.2) as bot:
            return await failure_of(bot)

    assert classify_send_error(asyncio.run(scenario())).outcome is SendOutcome.UNKNOWN
