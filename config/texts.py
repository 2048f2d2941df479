"""Every user-facing text, in English and Russian. `text(lang, key, **values)` formats one.

Handlers and actors never build user-visible sentences themselves; they pick a key here, so a
new language is a new column, not a code change.
"""
from __future__ import annotations

LANGS = ("en", "ru")

TEXTS: dict[str, dict[str, str]] = {
    "welcome": {
        "en": "Hi! I create images, video and music with AI.\nTap a button to start, or send /imagine <prompt>.",
        "ru": "Привет! Я создаю изображения, видео и музыку с помощью ИИ.\nНажмите кнопку, чтобы начать, или отправьте /imagine <описание>.",
    },
    "btn_create_image": {"en": "🎨 Create image", "ru": "🎨 Создать изображение"},
    "btn_create_another": {"en": "🔁 Create another", "ru": "🔁 Создать ещё"},
    "btn_menu": {"en": "🏠 Menu", "ru": "🏠 Меню"},
    "choose_model": {"en": "Choose a model:", "ru": "Выберите модель:"},
    "model_button": {"en": "{title} · {price} credits", "ru": "{title} · {price} кр."},
    "ask_prompt": {
        "en": "{title}: describe the picture you want (up to {limit} characters).",
        "ru": "{title}: опишите, какое изображение вы хотите (до {limit} символов).",
    },
    "prompt_too_long": {
        "en": "Your prompt is {length} characters long; {title} takes at most {limit}. Please send a shorter one.",
        "ru": "Ваше описание длиной {length} символов; {title} принимает не больше {limit}. Пришлите покороче.",
    },
    "prompt_empty": {
        "en": "Please send the prompt as text: describe what the picture should show.",
        "ru": "Пришлите описание текстом: что должно быть на изображении.",
    },
    "choose_ratio": {"en": "Choose the aspect ratio:", "ru": "Выберите соотношение сторон:"},
    "progress_queued": {"en": "⏳ {title}: starting…", "ru": "⏳ {title}: запускаю…"},
    "progress_generating": {
        "en": "⏳ {title}: generating… ({elapsed} s)",
        "ru": "⏳ {title}: генерирую… ({elapsed} с)",
    },
    "progress_done": {"en": "✅ {title}: done in {elapsed} s.", "ru": "✅ {title}: готово за {elapsed} с."},
    "progress_failed": {
        "en": "❌ {title}: the generation failed. {reason}",
        "ru": "❌ {title}: генерация не удалась. {reason}",
    },
    "result_caption": {"en": "{title}: {prompt}", "ru": "{title}: {prompt}"},
    "reason_kie": {"en": "The service said: {detail}", "ru": "Сервис ответил: {detail}"},
    "reason_deadline": {
        "en": "It took longer than {minutes} minutes, so I stopped waiting. No credits were used.",
        "ru": "Это заняло больше {minutes} минут, и я перестал ждать. Кредиты не списаны.",
    },
    "reason_unavailable": {
        "en": "The generation service is unavailable right now. Please try again later.",
        "ru": "Сервис генерации сейчас недоступен. Попробуйте позже.",
    },
    "reason_internal": {
        "en": "Something went wrong on our side. Please try again.",
        "ru": "Что-то пошло не так на нашей стороне. Попробуйте ещё раз.",
    },
    "imagine_usage": {
        "en": "Usage: /imagine <prompt> [--ar W:H]\nAspect ratios: {ratios}",
        "ru": "Использование: /imagine <описание> [--ar Ш:В]\nСоотношения сторон: {ratios}",
    },
    "bad_ratio": {
        "en": "{value} is not an aspect ratio {title} offers. Choose one of: {ratios}",
        "ru": "{value} — не то соотношение сторон, которое поддерживает {title}. Выберите: {ratios}",
    },
    "unknown_model": {
        "en": "There is no model called {value}. Send /start to see the models.",
        "ru": "Модели {value} нет. Отправьте /start, чтобы увидеть модели.",
    },
    "already_started": {
        "en": "This generation is already running.",
        "ru": "Эта генерация уже запущена.",
    },
    "stale_button": {
        "en": "This button is from an older message. Send /start to begin again.",
        "ru": "Эта кнопка из старого сообщения. Отправьте /start, чтобы начать заново.",
    },
    "cancelled": {"en": "Cancelled. Send /start to begin again.", "ru": "Отменено. Отправьте /start, чтобы начать заново."},
    "help": {
        "en": "/start – menu\n/imagine <prompt> [--ar W:H] – one-line generation\n/cancel – leave the current step\n/help – this text",
        "ru": "/start – меню\n/imagine <описание> [--ar Ш:В] – генерация одной строкой\n/cancel – выйти из текущего шага\n/help – эта справка",
    },
    "not_understood": {
        "en": "I did not understand that. Send /start for the menu or /help.",
        "ru": "Я не понял. Отправьте /start для меню или /help.",
    },
    "error_apology": {
        "en": "Sorry, something went wrong on our side. Please try again.",
        "ru": "Извините, у нас что-то пошло не так. Попробуйте ещё раз.",
    },
}


def text(lang: str, key: str, **values: object) -> str:
    entry = TEXTS[key]
    template = entry.get(lang) or entry["en"]
    return template.format(**values) if values else template
