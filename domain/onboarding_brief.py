# ruff: noqa: RUF001  (Cyrillic phrase tables: look-alike letters are intended)
"""A first agent drafted from a short brief (company, product, tone, language). Pure and deterministic.

The draft is a starting point the owner edits, not generated prose: fixed, reviewed phrasing per
language (en, ru, es, pt) with the company and product filled in, so the same brief always yields
the same agent and nothing leaves the process. The user's text is only ever a ``str.format``
*argument*, never a format string, so braces in a company name are printed, not interpreted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "ru", "es", "pt")
MAX_MESSAGE_CHARS = 600


class BriefTone(enum.StrEnum):
    """How the agent sounds; formal tones greet with the polite form."""

    friendly = "friendly"
    professional = "professional"
    casual = "casual"
    formal = "formal"


_FORMAL = {BriefTone.professional, BriefTone.formal}


@dataclass(frozen=True)
class Brief:
    """What the owner tells us in the onboarding form."""

    company: str
    product: str
    tone: BriefTone
    language: str
    agent_name: str | None = None


@dataclass(frozen=True)
class ScriptDraft:
    """One conversation stage (``stage`` is a ``ScriptStage`` value)."""

    stage: str
    name: str
    messages: tuple[str, ...]


@dataclass(frozen=True)
class ObjectionDraft:
    """A typical objection and its answer."""

    objection: str
    answer: str
    trigger_phrases: tuple[str, ...]
    category: str


@dataclass(frozen=True)
class RuleDraft:
    """One rule (``kind`` is a ``RuleKind`` value)."""

    kind: str
    instruction: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentDraft:
    """Everything the first agent is created with."""

    name: str
    description: str
    persona: str
    tone: str
    language: str
    scripts: tuple[ScriptDraft, ...]
    objections: tuple[ObjectionDraft, ...]
    rules: tuple[RuleDraft, ...]


def primary_language(language: str) -> str:
    """``pt-BR`` -> ``pt``."""
    return language.split("-", 1)[0].lower()


def is_supported(language: str) -> bool:
    """Whether a brief in ``language`` can be drafted."""
    return primary_language(language) in SUPPORTED_LANGUAGES


# Phrase tables. Keys: name, description, persona, greeting_formal, greeting_informal, then one list per
# stage, objections as (objection, answer, triggers, category), and rules as (kind, instruction).
_EN: dict[str, Any] = {
    "name": "{company} assistant",
    "description": "First agent of {company}, drafted from the onboarding brief. Review it before going live.",
    "persona": (
        "You are {name}, a {tone} sales assistant for {company}. You help leads understand {product}, find out "
        "what they need, and book the next step with the team. You are honest about what you do not know."
    ),
    "greeting_formal": "Good day, and thank you for contacting {company}. How may I help you?",
    "greeting_informal": "Hi! Thanks for reaching out to {company}. How can I help?",
    "greeting": ["I can tell you everything about {product}."],
    "qualification": [
        "What would you like {product} to help you with?",
        "How soon are you looking to get started?",
        "Who else is involved in the decision?",
    ],
    "presentation": [
        "{product} from {company} is built for exactly that.",
        "Would a short summary of how it works be useful?",
    ],
    "closing": [
        "Shall I book a short call with our team to get you started?",
        "What time suits you best?",
    ],
    "follow_up": [
        "Just checking in: do you have any questions about {product}?",
        "Happy to help whenever you are ready.",
    ],
    "stage_names": {
        "greeting": "Greeting", "qualification": "Qualification", "presentation": "Presentation",
        "closing": "Closing", "follow_up": "Follow-up",
    },
    "objections": [
        ("It is too expensive.",
         "I understand. Many customers found that {product} pays for itself; may I ask what budget you had in "
         "mind so I can suggest the best option?",
         ("expensive", "price", "cost", "too much"), "price"),
        ("Now is not a good time.",
         "No problem. When would be a better moment? I can get back to you then.",
         ("not now", "later", "busy", "next month"), "timing"),
        ("We already use another solution.",
         "That makes sense. What do you like about it, and what would you improve? {product} may complement it.",
         ("already use", "competitor", "another provider", "we have"), "competition"),
        ("I need to think about it.",
         "Of course. What would help you decide? I can send a short summary of {product} to share with your team.",
         ("think about it", "consult", "not sure", "maybe"), "decision"),
    ],
    "rules": [
        ("max_length", "Keep every message short: at most {max_chars} characters."),
        ("custom", "Always answer in English, in a {tone} tone."),
        ("custom", "Never invent prices, discounts or promises; if unsure, offer to connect the lead with the team."),
        ("forbid_topic", "Do not discuss politics, religion or competitors' weaknesses."),
        ("handoff_when", "Hand the conversation to a human when the lead asks for a person or is upset."),
    ],
}

_RU: dict[str, Any] = {
    "name": "Ассистент {company}",
    "description": "Первый агент {company}, созданный по анкете онбординга. Проверьте его перед запуском.",
    "persona": (
        "Вы — {name}, {tone} ассистент по продажам компании {company}. Вы помогаете клиентам разобраться в "
        "{product}, выясняете их потребности и договариваетесь о следующем шаге с командой. Вы честно говорите, "
        "если чего-то не знаете."
    ),
    "greeting_formal": "Здравствуйте! Благодарим вас за обращение в {company}. Чем могу помочь?",
    "greeting_informal": "Привет! Спасибо, что написали в {company}. Чем помочь?",
    "greeting": ["Я расскажу всё о {product}."],
    "qualification": [
        "С какой задачей вам должен помочь {product}?",
        "Как скоро вы хотели бы начать?",
        "Кто ещё участвует в принятии решения?",
    ],
    "presentation": [
        "{product} от {company} создан именно для этого.",
        "Рассказать коротко, как это работает?",
    ],
    "closing": [
        "Записать вас на короткий звонок с нашей командой?",
        "Какое время вам удобно?",
    ],
    "follow_up": [
        "Хотел уточнить: остались ли вопросы о {product}?",
        "Буду рад помочь, когда вам будет удобно.",
    ],
    "stage_names": {
        "greeting": "Приветствие", "qualification": "Квалификация", "presentation": "Презентация",
        "closing": "Закрытие", "follow_up": "Повторный контакт",
    },
    "objections": [
        ("Это слишком дорого.",
         "Понимаю. Многие клиенты увидели, что {product} окупается. Какой бюджет вы планировали? Я подберу "
         "лучший вариант.",
         ("дорого", "цена", "стоимость", "дороговато"), "price"),
        ("Сейчас неподходящее время.",
         "Без проблем. Когда будет удобнее? Я напишу вам тогда.",
         ("не сейчас", "позже", "занят", "в следующем месяце"), "timing"),
        ("Мы уже пользуемся другим решением.",
         "Понимаю. Что вам в нём нравится и что хотелось бы улучшить? {product} может его дополнить.",
         ("уже пользуемся", "конкурент", "другой поставщик", "у нас есть"), "competition"),
        ("Мне нужно подумать.",
         "Конечно. Что поможет вам принять решение? Могу прислать краткое описание {product} для вашей команды.",
         ("подумать", "посоветоваться", "не уверен", "может быть"), "decision"),
    ],
    "rules": [
        ("max_length", "Пишите коротко: не более {max_chars} символов в сообщении."),
        ("custom", "Всегда отвечайте на русском языке, обращайтесь на «вы», тон — {tone}."),
        ("custom", "Никогда не придумывайте цены, скидки и обещания; если не уверены, предложите связаться с "
                   "командой."),
        ("forbid_topic", "Не обсуждайте политику, религию и слабые стороны конкурентов."),
        ("handoff_when", "Передайте диалог человеку, если клиент просит живого сотрудника или недоволен."),
    ],
}

_ES: dict[str, Any] = {
    "name": "Asistente de {company}",
    "description": "Primer agente de {company}, creado a partir del formulario de bienvenida. Revíselo antes de "
                   "activarlo.",
    "persona": (
        "Eres {name}, un asistente de ventas {tone} de {company}. Ayudas a los clientes a entender {product}, "
        "descubres lo que necesitan y acuerdas el siguiente paso con el equipo. Eres honesto cuando no sabes algo."
    ),
    "greeting_formal": "Buenos días y gracias por contactar con {company}. ¿En qué puedo ayudarle?",
    "greeting_informal": "¡Hola! Gracias por escribir a {company}. ¿En qué te ayudo?",
    "greeting": ["Puedo contarle todo sobre {product}."],
    "qualification": [
        "¿En qué le gustaría que le ayudara {product}?",
        "¿Cuándo le gustaría empezar?",
        "¿Quién más participa en la decisión?",
    ],
    "presentation": [
        "{product} de {company} está pensado justo para eso.",
        "¿Le resultaría útil un breve resumen de cómo funciona?",
    ],
    "closing": [
        "¿Le reservo una llamada corta con nuestro equipo para empezar?",
        "¿Qué horario le viene mejor?",
    ],
    "follow_up": [
        "Solo quería saber si tiene alguna pregunta sobre {product}.",
        "Encantado de ayudarle cuando lo necesite.",
    ],
    "stage_names": {
        "greeting": "Saludo", "qualification": "Calificación", "presentation": "Presentación",
        "closing": "Cierre", "follow_up": "Seguimiento",
    },
    "objections": [
        ("Es demasiado caro.",
         "Lo entiendo. Muchos clientes comprobaron que {product} se amortiza. ¿Qué presupuesto tenía en mente? "
         "Así le propongo la mejor opción.",
         ("caro", "precio", "costo", "coste"), "price"),
        ("Ahora no es buen momento.",
         "Sin problema. ¿Cuándo le vendría mejor? Le escribo entonces.",
         ("ahora no", "más tarde", "ocupado", "el mes que viene"), "timing"),
        ("Ya usamos otra solución.",
         "Tiene sentido. ¿Qué le gusta de ella y qué mejoraría? {product} puede complementarla.",
         ("ya usamos", "competencia", "otro proveedor", "ya tenemos"), "competition"),
        ("Necesito pensarlo.",
         "Por supuesto. ¿Qué le ayudaría a decidir? Puedo enviarle un resumen de {product} para su equipo.",
         ("pensarlo", "consultar", "no estoy seguro", "quizás"), "decision"),
    ],
    "rules": [
        ("max_length", "Mensajes breves: como máximo {max_chars} caracteres."),
        ("custom", "Responde siempre en español, con un tono {tone}."),
        ("custom", "Nunca inventes precios, descuentos ni promesas; si dudas, ofrece poner al cliente en contacto "
                   "con el equipo."),
        ("forbid_topic", "No hables de política, religión ni de las debilidades de la competencia."),
        ("handoff_when", "Pasa la conversación a una persona si el cliente lo pide o está molesto."),
    ],
}

_PT: dict[str, Any] = {
    "name": "Assistente da {company}",
    "description": "Primeiro agente da {company}, criado a partir do formulário de boas-vindas. Revise antes de "
                   "ativar.",
    "persona": (
        "Você é {name}, um assistente de vendas {tone} da {company}. Você ajuda os clientes a entender {product}, "
        "descobre o que eles precisam e combina o próximo passo com a equipe. Você é honesto quando não sabe algo."
    ),
    "greeting_formal": "Bom dia e obrigado por entrar em contato com a {company}. Como posso ajudar?",
    "greeting_informal": "Oi! Obrigado por falar com a {company}. Como posso ajudar?",
    "greeting": ["Posso contar tudo sobre {product}."],
    "qualification": [
        "Em que você gostaria que {product} ajudasse?",
        "Quando você gostaria de começar?",
        "Quem mais participa da decisão?",
    ],
    "presentation": [
        "{product} da {company} foi feito exatamente para isso.",
        "Um resumo rápido de como funciona seria útil?",
    ],
    "closing": [
        "Posso agendar uma ligação rápida com nossa equipe para começar?",
        "Qual horário fica melhor para você?",
    ],
    "follow_up": [
        "Passando para saber se ficou alguma dúvida sobre {product}.",
        "Fico à disposição quando você quiser.",
    ],
    "stage_names": {
        "greeting": "Saudação", "qualification": "Qualificação", "presentation": "Apresentação",
        "closing": "Fechamento", "follow_up": "Acompanhamento",
    },
    "objections": [
        ("Está muito caro.",
         "Entendo. Muitos clientes perceberam que {product} se paga. Qual orçamento você tinha em mente? Assim "
         "sugiro a melhor opção.",
         ("caro", "preço", "custo", "valor"), "price"),
        ("Agora não é um bom momento.",
         "Sem problema. Quando seria melhor? Falo com você então.",
         ("agora não", "mais tarde", "ocupado", "mês que vem"), "timing"),
        ("Já usamos outra solução.",
         "Faz sentido. Do que você gosta nela e o que melhoraria? {product} pode complementá-la.",
         ("já usamos", "concorrente", "outro fornecedor", "já temos"), "competition"),
        ("Preciso pensar.",
         "Claro. O que ajudaria na decisão? Posso enviar um resumo de {product} para sua equipe.",
         ("pensar", "consultar", "não tenho certeza", "talvez"), "decision"),
    ],
    "rules": [
        ("max_length", "Mensagens curtas: no máximo {max_chars} caracteres."),
        ("custom", "Responda sempre em português, com um tom {tone}."),
        ("custom", "Nunca invente preços, descontos ou promessas; se tiver dúvida, ofereça falar com a equipe."),
        ("forbid_topic", "Não fale de política, religião ou dos pontos fracos da concorrência."),
        ("handoff_when", "Passe a conversa para uma pessoa se o cliente pedir ou estiver insatisfeito."),
    ],
}

# How each tone is named inside the persona and rules, per language.
_TONE_WORDS: dict[str, dict[BriefTone, str]] = {
    "en": {BriefTone.friendly: "friendly", BriefTone.professional: "professional", BriefTone.casual: "casual",
           BriefTone.formal: "formal"},
    "ru": {BriefTone.friendly: "дружелюбный", BriefTone.professional: "профессиональный",
           BriefTone.casual: "непринуждённый", BriefTone.formal: "официальный"},
    "es": {BriefTone.friendly: "cercano", BriefTone.professional: "profesional", BriefTone.casual: "informal",
           BriefTone.formal: "formal"},
    "pt": {BriefTone.friendly: "simpático", BriefTone.professional: "profissional",
           BriefTone.casual: "descontraído", BriefTone.formal: "formal"},
}

_PHRASES: dict[str, dict[str, Any]] = {"en": _EN, "ru": _RU, "es": _ES, "pt": _PT}
_STAGES: tuple[str, ...] = ("greeting", "qualification", "presentation", "closing", "follow_up")


def draft_agent(brief: Brief) -> AgentDraft:
    """The first agent for ``brief``: persona, five scripts, four objections and five rules.

    Raises ``ValueError`` for a language without phrase tables (see :data:`SUPPORTED_LANGUAGES`).
    """
    lang = primary_language(brief.language)
    if lang not in _PHRASES:
        raise ValueError(f"no onboarding draft for language {brief.language!r}")
    p = _PHRASES[lang]
    tone_word = _TONE_WORDS[lang][brief.tone]
    company, product = brief.company.strip(), brief.product.strip()
    name = (brief.agent_name or "").strip() or p["name"].format(company=company)
    values = {"company": company, "product": product, "name": name, "tone": tone_word,
              "max_chars": MAX_MESSAGE_CHARS}

    def fill(text: str) -> str:
        return text.format(**values)

    opening = p["greeting_formal"] if brief.tone in _FORMAL else p["greeting_informal"]
    scripts = []
    for stage in _STAGES:
        lines = [opening, *p[stage]] if stage == "greeting" else list(p[stage])
        scripts.append(ScriptDraft(stage=stage, name=p["stage_names"][stage], messages=tuple(fill(x) for x in lines)))
    objections = tuple(
        ObjectionDraft(objection=fill(o), answer=fill(a), trigger_phrases=tuple(t), category=c)
        for o, a, t, c in p["objections"]
    )
    rules = tuple(
        RuleDraft(kind=kind, instruction=fill(text),
                  parameters={"max_chars": MAX_MESSAGE_CHARS} if kind == "max_length" else {})
        for kind, text in p["rules"]
    )
    return AgentDraft(
        name=name[:200], description=fill(p["description"]), persona=fill(p["persona"]), tone=brief.tone.value,
        language=brief.language, scripts=tuple(scripts), objections=objections, rules=rules,
    )
