"""The few sentences the brain says on its own (everything else comes from the agent's configuration)."""

# Multilingual on purpose (en/ru/es/pt): Cyrillic letters and typographic quotes are intended.
# ruff: noqa: RUF001

from __future__ import annotations

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "handoff": "Of course — I'm passing you to a colleague who will reply here shortly.",
        "forbidden": "I'm sorry, I can't discuss that topic.",
        "unknown": "I don't have that information at hand; a colleague will confirm it for you.",
        "ask_field": "Could you tell me your {label}?",
        "invalid_field": "The {label} you sent doesn't look right ({error}) — could you check it?",
        "thanks_qualified": "Thank you, I have everything I need. A colleague will contact you shortly.",
        "follow_up": "Hi{name}, just following up on our conversation.",
        "fallback_greeting": "Hello! How can I help you?",
    },
    "ru": {
        "handoff": "Конечно — передаю вас коллеге, он ответит здесь в ближайшее время.",
        "forbidden": "К сожалению, я не могу обсуждать эту тему.",
        "unknown": "У меня нет этой информации под рукой; коллега уточнит её для вас.",
        "ask_field": "Подскажите, пожалуйста, {label}?",
        "invalid_field": "Похоже, {label} указан неверно ({error}) — проверьте, пожалуйста.",
        "thanks_qualified": "Спасибо, у меня есть всё необходимое. Коллега скоро с вами свяжется.",
        "follow_up": "Здравствуйте{name}! Хотел(а) продолжить наш разговор.",
        "fallback_greeting": "Здравствуйте! Чем могу помочь?",
    },
    "es": {
        "handoff": "Por supuesto: le paso con un compañero que le responderá aquí en breve.",
        "forbidden": "Lo siento, no puedo hablar de ese tema.",
        "unknown": "No tengo esa información a mano; un compañero se la confirmará.",
        "ask_field": "¿Podría indicarme su {label}?",
        "invalid_field": "El dato {label} no parece correcto ({error}); ¿podría revisarlo?",
        "thanks_qualified": "Gracias, ya tengo todo lo necesario. Un compañero le contactará pronto.",
        "follow_up": "Hola{name}, le escribo para retomar nuestra conversación.",
        "fallback_greeting": "¡Hola! ¿En qué puedo ayudarle?",
    },
    "pt": {
        "handoff": "Claro — vou passar você para um colega que responderá aqui em breve.",
        "forbidden": "Desculpe, não posso falar sobre esse assunto.",
        "unknown": "Não tenho essa informação agora; um colega vai confirmar para você.",
        "ask_field": "Pode me informar seu {label}?",
        "invalid_field": "O dado {label} não parece correto ({error}) — pode verificar?",
        "thanks_qualified": "Obrigado, já tenho tudo o que preciso. Um colega entrará em contato em breve.",
        "follow_up": "Olá{name}, passando para dar continuidade à nossa conversa.",
        "fallback_greeting": "Olá! Como posso ajudar?",
    },
}


def phrase(language: str, key: str, **values: str) -> str:
    """The sentence ``key`` in the agent's language (English when it has none)."""
    table = PHRASES.get(language.split("-")[0].lower(), PHRASES["en"])
    return table[key].format(**values)
