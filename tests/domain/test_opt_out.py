"""Opt-out detection: unambiguous requests to stop count in four languages; ordinary sales talk never does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.brain.text import fold
from domain.opt_out import opt_out_phrase


@pytest.mark.parametrize("text", [
    "STOP", "Stop.", " stop!! ", "Unsubscribe", "Please unsubscribe me", "Don\u2019t contact me again",
    "remove me from your list please", "Стоп", "Отпишите меня, пожалуйста", "Больше не пишите мне",
    "Quiero darme de baja", "No me escriban más", "Por favor, parem de me enviar mensagens",
    "Não quero receber mais nada", "BAJA",
])
def test_a_request_to_stop_is_an_opt_out(text: str) -> None:
    assert opt_out_phrase(text) is not None


@pytest.mark.parametrize("text", [
    "Can you stop by tomorrow to measure the roof?", "What does it cost?", "Is there a non-stop support line?",
    "Hola, ¿cuánto cuesta?", "Сколько стоит установка?", "Quero saber o preço", "Yes please, call me",
    "I want to subscribe to your newsletter",
])
def test_ordinary_sales_talk_is_not_an_opt_out(text: str) -> None:
    assert opt_out_phrase(text) is None


@given(st.text(max_size=80))
def test_a_verdict_always_names_a_phrase_that_is_in_the_message(text: str) -> None:
    found = opt_out_phrase(text)
    assert found is None or found in " ".join(fold(text).replace("\u2019", "'").split())


@given(st.sampled_from(["stop", "unsubscribe", "стоп", "отписаться", "baja", "parar"]),
       st.text(alphabet=" .!?,¡¿", max_size=4), st.text(alphabet=" .!?", max_size=4), st.booleans())
def test_a_stop_word_alone_is_an_opt_out_whatever_its_case_and_punctuation(
    word: str, before: str, after: str, shout: bool
) -> None:
    assert opt_out_phrase(before + (word.upper() if shout else word) + after) == word
