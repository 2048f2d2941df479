"""Every user-facing text, in English and Russian. `text(lang, key, **values)` formats one.

Handlers and actors never build user-visible sentences themselves; they pick a key here, so a
new language is a new column, not a code change.
"""
from __future__ import annotations

LANGS = ("en", "ru")

TEXTS: dict[str, dict[str, str]] = {
    "welcome": {
        "en": "Hi! I create images, video and speech with AI.\n"
              "Tap a button to start, or send /imagine <prompt>. /help shows examples.",
        "ru": "Привет! Я создаю изображения, видео и речь с помощью ИИ.\n"
              "Нажмите кнопку, чтобы начать, или отправьте /imagine <описание>. В /help есть примеры.",
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
    "progress_queued": {"en": "⏳ {title}: starting…{estimate}", "ru": "⏳ {title}: запускаю…{estimate}"},
    "progress_generating": {
        "en": "⏳ {title}: generating… {elapsed} s{estimate}",
        "ru": "⏳ {title}: генерирую… {elapsed} с{estimate}",
    },
    "progress_done": {"en": "✅ {title}: done in {elapsed} s.", "ru": "✅ {title}: готово за {elapsed} с."},
    "progress_failed": {
        "en": "❌ {title}: the generation failed. {reason}\n{money}",
        "ru": "❌ {title}: генерация не удалась. {reason}\n{money}",
    },
    "money_not_charged": {"en": "You were not charged.", "ru": "Оплата не списана."},
    "money_returned": {"en": "{amount} credits returned to your balance.",
                       "ru": "{amount} кр. возвращено на баланс."},
    "result_cost": {"en": " · {price} credits", "ru": " · {price} кр."},
    "result_caption": {"en": "{title}: {prompt}", "ru": "{title}: {prompt}"},
    "reason_kie": {"en": "The service said: {detail}", "ru": "Сервис ответил: {detail}"},
    # KIE's failure messages that bot/kie_failures.py recognises, one key per KieReason
    "reason_kie_content_policy": {
        "en": "The service refused it under its content rules. Please change the prompt or the picture and try again.",
        "ru": "Сервис отклонил запрос по своим правилам о содержании. Измените описание или изображение "
              "и попробуйте ещё раз.",
    },
    "reason_kie_english_only": {
        "en": "This model takes prompts in English only. Please write the prompt in English.",
        "ru": "Эта модель понимает только описания на английском. Напишите описание по-английски.",
    },
    "reason_kie_prompt_too_long": {
        "en": "The prompt is too long for the service. Please shorten it.",
        "ru": "Описание слишком длинное для сервиса. Сократите его.",
    },
    "reason_kie_file_size": {
        "en": "The file you sent is too large, or its size does not suit the model. Please send a smaller one.",
        "ru": "Присланный файл слишком большой или его размер не подходит модели. Пришлите файл поменьше.",
    },
    "reason_kie_unreadable_file": {
        "en": "The service could not read the file you sent. Please send it again in a common format.",
        "ru": "Сервис не смог прочитать присланный файл. Пришлите его ещё раз в распространённом формате.",
    },
    "reason_kie_provider_credits": {
        "en": "The generation service cannot take new work right now. Please try again later.",
        "ru": "Сервис генерации сейчас не может принять задачу. Попробуйте позже.",
    },
    "reason_kie_timeout": {
        "en": "The service took too long and gave up. Please try again.",
        "ru": "Сервис не успел выполнить задачу и прекратил работу. Попробуйте ещё раз.",
    },
    "reason_kie_busy": {
        "en": "The service is overloaded right now. Please try again later.",
        "ru": "Сервис сейчас перегружен. Попробуйте позже.",
    },
    "reason_kie_server_error": {
        "en": "The service had an internal error. Please try again.",
        "ru": "У сервиса произошла внутренняя ошибка. Попробуйте ещё раз.",
    },
    "reason_kie_model_unavailable": {
        "en": "This model is not available at the service right now. Please choose another model.",
        "ru": "Эта модель сейчас недоступна в сервисе. Выберите другую модель.",
    },
    "reason_kie_bad_input": {
        "en": "The service did not accept the settings of this request. Please change them and try again.",
        "ru": "Сервис не принял параметры этого запроса. Измените их и попробуйте ещё раз.",
    },
    "reason_kie_no_result": {
        "en": "The model finished without a result. Please try again.",
        "ru": "Модель завершила работу без результата. Попробуйте ещё раз.",
    },
    # a message it does not recognise: English quotes KIE (reason_kie); other languages say this
    "reason_kie_unexplained": {
        "en": "The generation service refused the task. Please try again or change the request.",
        "ru": "Сервис генерации отклонил задачу. Попробуйте ещё раз или измените запрос.",
    },
    "reason_deadline": {
        "en": "It took longer than {minutes} minutes, so I stopped waiting.",
        "ru": "Это заняло больше {minutes} минут, и я перестал ждать.",
    },
    "reason_no_kie_credit": {
        "en": "The generation service cannot take new work right now. Please try again later.",
        "ru": "Сервис генерации сейчас не может принять задачу. Попробуйте позже.",
    },
    "reason_unavailable": {
        "en": "The generation service is unavailable right now. Please try again later.",
        "ru": "Сервис генерации сейчас недоступен. Попробуйте позже.",
    },
    "reason_upload_refused": {
        "en": "Telegram would not give me the file you sent. Please send it again.",
        "ru": "Telegram не отдал мне файл, который вы прислали. Пришлите его ещё раз.",
    },
    "reason_internal": {
        "en": "Something went wrong on our side. Please try again.",
        "ru": "Что-то пошло не так на нашей стороне. Попробуйте ещё раз.",
    },
    "imagine_usage": {
        "en": "Usage: /imagine <prompt> [--ar W:H] [--model ID]\nFor example: /imagine a lighthouse at dawn --ar 16:9",
        "ru": "Использование: /imagine <описание> [--ar Ш:В] [--model ID]\n"
              "Например: /imagine маяк на рассвете --ar 16:9",
    },
    "bad_ratio": {
        "en": "{value} is not an aspect ratio {title} offers. Choose one of: {ratios}",
        "ru": "{value} — не то соотношение сторон, которое поддерживает {title}. Выберите: {ratios}",
    },
    "unknown_model": {
        "en": "There is no model called {value}. Send /models to see them with their ids.",
        "ru": "Модели {value} нет. Отправьте /models, чтобы увидеть модели и их id.",
    },
    "cancelled": {"en": "Cancelled. Send /start to begin again.",
                  "ru": "Отменено. Отправьте /start, чтобы начать заново."},
    "help": {
        "en": "I make pictures, videos and speech with AI models.\n\n"
              "• /start: pick what to create, then a model, and answer its questions.\n"
              "• In one line: /imagine a lighthouse at dawn --ar 16:9\n"
              "  with another model: /imagine a cat in a hat --model nano-banana\n"
              "• Send me any text and I offer to draw it; a photo with a caption, and I offer to edit it.\n\n"
              "/models – every model with its id and price (/models video searches)\n"
              "/history – your recent generations\n"
              "/balance – your credits\n/buy – top up with Telegram Stars\n"
              "/cancel – leave the current step\n/lang ru or /lang en – language",
        "ru": "Я создаю изображения, видео и речь с помощью моделей ИИ.\n\n"
              "• /start: выберите, что создать, затем модель, и ответьте на её вопросы.\n"
              "• Одной строкой: /imagine маяк на рассвете --ar 16:9\n"
              "  другой моделью: /imagine кот в шляпе --model nano-banana\n"
              "• Пришлите любой текст, и я предложу его нарисовать; фото с подписью — и я предложу его изменить.\n\n"
              "/models – все модели с id и ценами (/models видео — поиск)\n"
              "/history – ваши последние генерации\n"
              "/balance – ваши кредиты\n/buy – пополнить звёздами Telegram\n"
              "/cancel – выйти из текущего шага\n/lang ru или /lang en – язык",
    },
    "not_understood": {
        "en": "I did not understand that. Send /start for the menu or /help.",
        "ru": "Я не понял. Отправьте /start для меню или /help.",
    },
    "error_apology": {
        "en": "Sorry, something went wrong on our side. Please try again.",
        "ru": "Извините, у нас что-то пошло не так. Попробуйте ещё раз.",
    },
    # --- menus and the wizard ---------------------------------------------------------------
    "cat_image": {"en": "🎨 Create image", "ru": "🎨 Создать изображение"},
    "cat_image_edit": {"en": "🖌 Edit image", "ru": "🖌 Изменить изображение"},
    "cat_video": {"en": "🎬 Create video", "ru": "🎬 Создать видео"},
    "cat_audio": {"en": "🎵 Audio & speech", "ru": "🎵 Аудио и речь"},
    "cat_tools": {"en": "🧰 Upscale & tools", "ru": "🧰 Улучшение и инструменты"},
    "models_page": {"en": "{category}: choose a model ({page}/{pages})",
                    "ru": "{category}: выберите модель ({page}/{pages})"},
    "btn_prev": {"en": "⬅️ Back", "ru": "⬅️ Назад"},
    "btn_next": {"en": "More ➡️", "ru": "Ещё ➡️"},
    "btn_skip": {"en": "Skip", "ru": "Пропустить"},
    "btn_done": {"en": "✅ Done", "ru": "✅ Готово"},
    "btn_generate": {"en": "✅ Generate", "ru": "✅ Создать"},
    "btn_generate_paid": {"en": "✅ Generate · {price}", "ru": "✅ Создать · {price}"},
    "btn_top_up": {"en": "💳 Top up", "ru": "💳 Пополнить"},
    "btn_more_options": {"en": "⚙️ More options", "ru": "⚙️ Дополнительно"},
    "btn_yes": {"en": "Yes", "ru": "Да"},
    "btn_no": {"en": "No", "ru": "Нет"},
    "btn_regenerate": {"en": "🔁 Regenerate", "ru": "🔁 Ещё раз"},
    "btn_edit_prompt": {"en": "✏️ Edit prompt", "ru": "✏️ Изменить запрос"},
    "btn_original": {"en": "🖼 Original quality", "ru": "🖼 Оригинал"},
    "btn_retry": {"en": "🔁 Try again", "ru": "🔁 Попробовать снова"},
    "btn_resend": {"en": "📤 #{id}", "ru": "📤 №{id}"},
    "model_card": {"en": "{name}\n{description}\n⏱ usually about {time} s · 💰 {price}",
                   "ru": "{name}\n{description}\n⏱ обычно около {time} с · 💰 {price}"},
    "price_credits": {"en": "{price} credits", "ru": "{price} кр."},
    "price_from": {"en": "from {price}", "ru": "от {price}"},
    "price_free": {"en": "free", "ru": "бесплатно"},
    "price_free_per_day": {"en": "free {n}/day", "ru": "бесплатно {n}/день"},
    "price_free_then": {"en": "free {n}/day, then from {price}", "ru": "бесплатно {n}/день, затем от {price}"},
    "price_none": {"en": "no price", "ru": "без цены"},
    "free_left": {"en": "free: {left} of {n} left today", "ru": "бесплатно: осталось {left} из {n} на сегодня"},
    "confirm_price": {"en": "💰 {price} · your balance: {balance}", "ru": "💰 {price} · ваш баланс: {balance}"},
    "confirm_short": {
        "en": "Not enough credits. Top up: your choices are kept, and one tap on ✅ starts it.",
        "ru": "Не хватает кредитов. Пополните баланс: ваш выбор сохранён, и одно нажатие на ✅ запустит генерацию.",
    },
    "confirm_no_price": {
        "en": "This model has no price yet, so it cannot be started. Please choose another one.",
        "ru": "У этой модели пока нет цены, запустить её нельзя. Выберите другую.",
    },
    "price_changed": {"en": "The price has changed since you saw it. Please confirm again:",
                      "ru": "Цена изменилась с тех пор, как вы её видели. Подтвердите ещё раз:"},
    "short_of_credits": {
        "en": "Not enough credits: this costs {price}, your balance is {balance}. "
              "Top up and tap ✅ again: your choices are kept.",
        "ru": "Не хватает кредитов: это стоит {price}, ваш баланс {balance}. "
              "Пополните баланс и нажмите ✅ ещё раз: ваш выбор сохранён.",
    },
    "no_price": {"en": "{title} cannot be used right now: it has no price yet. Please choose another model.",
                 "ru": "{title} сейчас недоступна: у неё пока нет цены. Выберите другую модель."},
    "no_price_free_used": {
        "en": "Today's free {title} generations are used up, and it cannot be bought. Come back tomorrow.",
        "ru": "Бесплатные генерации {title} на сегодня закончились, а купить их нельзя. Возвращайтесь завтра.",
    },
    "referred": {
        "en": "🎁 You came with a friend's invitation: after your first purchase you both get {bonus}.",
        "ru": "🎁 Вы пришли по приглашению друга: после первой покупки вы оба получите {bonus}.",
    },
    # --- balance and payments ---------------------------------------------------------------
    "balance_available": {"en": "💰 Balance: {amount} credits", "ru": "💰 Баланс: {amount} кр."},
    "balance_held": {"en": "⏳ On hold for running generations: {amount} credits",
                     "ru": "⏳ Зарезервировано для идущих генераций: {amount} кр."},
    "balance_free": {"en": "🎁 Free today: {items}", "ru": "🎁 Бесплатно сегодня: {items}"},
    "balance_free_item": {"en": "{name} {left} of {n} left", "ru": "{name}: осталось {left} из {n}"},
    "balance_movements": {"en": "Latest movements:", "ru": "Последние операции:"},
    "balance_no_movements": {"en": "No movements yet.", "ru": "Операций пока нет."},
    "balance_referral": {
        "en": "👥 Your invitation link: {link}\nWhen a friend you invite makes a first purchase, you both get "
              "{bonus} credits.",
        "ru": "👥 Ваша ссылка-приглашение: {link}\nКогда приглашённый друг сделает первую покупку, вы оба "
              "получите {bonus} кр.",
    },
    "balance_link": {"en": "👥 Your invitation link: {link}", "ru": "👥 Ваша ссылка-приглашение: {link}"},
    "mv_job": {"en": "job #{id} {model}", "ru": "задача №{id} {model}"},
    "mv_hold": {"en": "{amount} · {job} · on hold", "ru": "{amount} · {job} · в резерве"},
    "mv_capture": {"en": "✓ {amount} paid · {job}", "ru": "✓ оплачено {amount} · {job}"},
    "mv_release": {"en": "{amount} · {job} · returned", "ru": "{amount} · {job} · возврат"},
    "mv_purchase": {"en": "{amount} · Stars purchase", "ru": "{amount} · покупка за звёзды"},
    "mv_refund": {"en": "{amount} · Stars refund", "ru": "{amount} · возврат звёзд"},
    "mv_grant": {"en": "{amount} · from the operator{reason}", "ru": "{amount} · от оператора{reason}"},
    "mv_grant_back": {"en": "{amount} · taken back by the operator{reason}",
                      "ru": "{amount} · списано оператором{reason}"},
    "mv_welcome": {"en": "{amount} · welcome credit", "ru": "{amount} · приветственный бонус"},
    "mv_referral": {"en": "{amount} · referral bonus", "ru": "{amount} · бонус за приглашение"},
    "buy_none": {"en": "Top-ups are not available right now.", "ru": "Пополнение сейчас недоступно."},
    "invoice_title": {"en": "{credits} credits", "ru": "{credits} кредитов"},
    "invoice_description": {
        "en": "{credits} credits for generations in this bot, paid with Telegram Stars.",
        "ru": "{credits} кредитов на генерации в этом боте, оплата звёздами Telegram.",
    },
    "checkout_changed": {
        "en": "This offer has changed. Send /buy for the current packages; nothing was charged.",
        "ru": "Это предложение изменилось. Отправьте /buy, чтобы увидеть актуальные пакеты; оплата не списана.",
    },
    "paid": {"en": "✅ Payment received: +{credits}. Your balance: {balance}.",
             "ru": "✅ Оплата получена: +{credits}. Ваш баланс: {balance}."},
    "refunded": {"en": "↩️ Your payment of {stars} ⭐ was refunded.", "ru": "↩️ Ваш платёж {stars} ⭐ возвращён."},
    "refunded_taken": {"en": "{taken} taken back from your credits; balance: {balance}.",
                       "ru": "С баланса списано {taken}; баланс: {balance}."},
    "payment_unmatched": {
        "en": "I received your payment but cannot tell which package it was for. "
              "The operator has been told and will sort it out.",
        "ru": "Оплата получена, но я не могу понять, за какой пакет. Оператор уже знает и всё исправит.",
    },
    "refund_usage": {"en": "Usage: /refund <telegram_payment_charge_id>",
                     "ru": "Использование: /refund <telegram_payment_charge_id>"},
    "refund_requested": {
        "en": "Refund of {charge} queued: {taken} taken back from user {user}. Telegram is asked by the outbox.",
        "ru": "Возврат {charge} поставлен в очередь: у пользователя {user} списано {taken}. "
              "Запрос в Telegram отправит очередь возвратов.",
    },
    "refund_already": {"en": "{charge} was refunded or queued before ({taken} taken back then).",
                       "ru": "{charge} уже возвращён или в очереди (тогда списано {taken})."},
    "refund_unknown": {"en": "There is no payment {charge}.", "ru": "Платежа {charge} нет."},
    "page_kie_no_credit": {
        "en": "⚠️ KIE says the account has no credit left (402): paid jobs fail until it is topped up. {detail}",
        "ru": "⚠️ KIE сообщает, что на счёте нет кредитов (402): задачи не выполняются, пока счёт не пополнен. "
              "{detail}",
    },
    "page_kie_balance_low": {
        "en": "⚠️ The KIE balance is low: new jobs that cost more are refused. {detail}",
        "ru": "⚠️ Баланс KIE низкий: новые задачи дороже остатка не принимаются. {detail}",
    },
    "page_payment_discrepancy": {
        "en": "⚠️ A Telegram Stars payment is on one side only (ledger or Telegram). {detail}",
        "ru": "⚠️ Платёж звёздами есть только с одной стороны (в журнале или в Telegram). {detail}",
    },
    "ask_prompt_field": {"en": "Now describe what you want (up to {limit} characters).",
                         "ru": "Теперь опишите, что вы хотите (до {limit} символов)."},
    "ask_text_field": {"en": "{field}: send it as text{limit}.", "ru": "{field}: пришлите текстом{limit}."},
    "limit_chars": {"en": " (up to {limit} characters)", "ru": " (до {limit} символов)"},
    "ask_number_field": {"en": "{field}: send a number{range}.", "ru": "{field}: пришлите число{range}."},
    "ask_integer_field": {"en": "{field}: send a whole number{range}.", "ru": "{field}: пришлите целое число{range}."},
    "range": {"en": " from {min} to {max}", "ru": " от {min} до {max}"},
    "ask_choice_field": {"en": "{field}: choose one.", "ru": "{field}: выберите вариант."},
    "ask_bool_field": {"en": "{field}: yes or no?", "ru": "{field}: да или нет?"},
    "ask_media_field": {"en": "{field}: send {what} or paste a link{count}.",
                        "ru": "{field}: пришлите {what} или ссылку{count}."},
    "media_count": {"en": " (up to {max}; tap Done when finished)",
                    "ru": " (до {max}; нажмите «Готово», когда закончите)"},
    "media_image": {"en": "a photo", "ru": "фото"},
    "media_video": {"en": "a video", "ru": "видео"},
    "media_audio": {"en": "an audio file", "ru": "аудиофайл"},
    "media_file": {"en": "a file", "ru": "файл"},
    "ask_list_field": {"en": "{field}: send the values separated by commas.",
                       "ru": "{field}: пришлите значения через запятую."},
    "got_item": {"en": "Got {count}. Send another or tap Done.",
                 "ru": "Получено: {count}. Пришлите ещё или нажмите «Готово»."},
    "bad_integer": {"en": "{field} must be a whole number{range}.", "ru": "{field} — это целое число{range}."},
    "bad_number": {"en": "{field} must be a number{range}.", "ru": "{field} — это число{range}."},
    "bad_url": {"en": "Please send a link that starts with http:// or https://, or upload the file.",
                "ru": "Пришлите ссылку, начинающуюся с http:// или https://, или загрузите файл."},
    "bad_value": {"en": "That does not fit: {reason}.", "ru": "Так не подойдёт: {reason}."},
    "too_short": {"en": "{field} is too short: at least {limit} characters, please.",
                  "ru": "{field} слишком короткое: нужно не меньше {limit} символов."},
    "wrong_media": {"en": "{field} needs {what}.", "ru": "{field}: нужно {what}."},
    "confirm": {"en": "{name}\n{choices}", "ru": "{name}\n{choices}"},
    "confirm_pick_last": {"en": "{field}: choose one to start.", "ru": "{field}: выберите вариант, чтобы начать."},
    "confirm_generate": {"en": "Tap ✅ Generate to start.", "ru": "Нажмите ✅ «Создать», чтобы начать."},
    "started_generate": {"en": "✅ Started.", "ru": "✅ Запущено."},
    "choose_option": {"en": "Which option?", "ru": "Какой параметр?"},
    "busy": {"en": "⏳ Your previous generation is still running. I kept your choices: "
                   "tap the button again when it is done, or send /cancel.",
             "ru": "⏳ Предыдущая генерация ещё идёт. Я сохранил ваш выбор: "
                   "нажмите кнопку ещё раз, когда она закончится, или отправьте /cancel."},
    "history_empty": {"en": "No generations yet. Send /start.", "ru": "Генераций пока нет. Отправьте /start."},
    "history_title": {"en": "Your recent generations:", "ru": "Ваши последние генерации:"},
    "history_line": {"en": "#{id} {name} · {state} · {prompt}", "ru": "№{id} {name} · {state} · {prompt}"},
    "job_gone": {"en": "That result is not available any more.", "ru": "Этот результат больше недоступен."},
    "lang_choose": {"en": "Choose your language:", "ru": "Выберите язык:"},
    "lang_set": {"en": "Language: English.", "ru": "Язык: русский."},
    "cancelled_job": {"en": "✖ {title}: cancelled; the generation had not started yet.",
                      "ru": "✖ {title}: отменено; генерация ещё не начиналась."},
    "result_text": {"en": "{title}:\n{text}", "ru": "{title}:\n{text}"},
    "state_running": {"en": "running", "ru": "в работе"},
    "state_delivered": {"en": "done", "ru": "готово"},
    "state_failed": {"en": "failed", "ru": "ошибка"},
    "state_cancelled": {"en": "cancelled", "ru": "отменено"},
    "state_undeliverable": {"en": "not delivered", "ru": "не доставлено"},
    "choice_default": {"en": "{value} · default", "ru": "{value} · по умолчанию"},
    "unit_seconds": {"en": "{n} s", "ru": "{n} с"},
    "unit_times": {"en": "×{n}", "ru": "×{n}"},
    "too_many_items": {"en": "{field}: at most {max}, please.", "ru": "{field}: не больше {max}, пожалуйста."},
    "too_few_items": {"en": "{field}: at least {min}, please.", "ru": "{field}: нужно не меньше {min}."},
    "field_not_fit": {"en": "{field}: that does not fit. Please try another value.",
                      "ru": "{field}: так не подойдёт. Попробуйте другое значение."},
    "field_missing": {"en": "{field} is missing.", "ru": "Не хватает: {field}."},
    "result_character": {
        "en": "Character ID: {id}\nTo cast this character, give the ID in a Sora 2 video under "
              "⚙️ More options → Characters.",
        "ru": "Номер персонажа: {id}\nЧтобы снять этого персонажа, укажите номер в видео Sora 2: "
              "⚙️ «Дополнительно» → «Персонажи».",
    },
    "result_speaker": {"en": "Speaker {n}", "ru": "Говорящий {n}"},
    # --- #14 wording: questions and answers in human words (keys added above this line) ---
    "progress_waiting": {
        "en": "⏳ {title}: {place} in your queue{estimate}\nIt starts by itself when the one before it is done.",
        "ru": "⏳ {title}: {place} в вашей очереди{estimate}\nЗапустится сама, когда закончится предыдущая.",
    },
    "queue_next": {"en": "next", "ru": "следующая"},
    "queue_place": {"en": "{ordinal}", "ru": "{n}-я"},
    "estimate_usual": {"en": " · usually about {seconds} s", "ru": " · обычно около {seconds} с"},
    "estimate_about": {"en": " · about {seconds} s", "ru": " · около {seconds} с"},
    "estimate_slow": {"en": " · taking longer than usual (usually about {seconds} s)",
                      "ru": " · дольше обычного (обычно около {seconds} с)"},
    "btn_cancel": {"en": "✖ Cancel", "ru": "✖ Отменить"},
    "btn_stop_waiting": {"en": "⏹ Stop waiting", "ru": "⏹ Не ждать"},
    "cannot_stop": {
        "en": "The generation service cannot stop a task once it has started. You can stop waiting: "
              "the result will be thrown away and never sent. {money}",
        "ru": "Сервис генерации не может остановить уже начатую задачу. Можно перестать ждать: "
              "результат будет выброшен и не придёт. {money}",
    },
    "money_will_not_charge": {"en": "You will not be charged.", "ru": "Оплата не спишется."},
    "money_will_return": {"en": "The {amount} credits on hold will come back to your balance.",
                          "ru": "{amount} кр. из резерва вернутся на баланс."},
    "abandoned_job": {
        "en": "⏹ {title}: stopped waiting. If the service still finishes it, the result will not be sent.",
        "ru": "⏹ {title}: ожидание остановлено. Если сервис всё же закончит, результат не придёт.",
    },
    "nothing_to_cancel": {"en": "Nothing to cancel: no generation of yours is running or waiting here.",
                          "ru": "Отменять нечего: здесь нет ваших идущих или ждущих генераций."},
    "cancel_left_step": {"en": "Left the current step. Send /start to begin again.",
                         "ru": "Вы вышли из текущего шага. Отправьте /start, чтобы начать заново."},
    "cancel_requested_one": {
        "en": "⏹ Stopping your generation: its message above shows what happens to it and to the credits.",
        "ru": "⏹ Останавливаю вашу генерацию: в её сообщении выше видно, что с ней и с оплатой.",
    },
    "cancel_requested_many": {
        "en": "⏹ Stopping your {count} generations: each one's message above shows what happens to it "
              "and to the credits.",
        "ru": "⏹ Останавливаю ваши генерации ({count}): в сообщении каждой выше видно, что с ней и с оплатой.",
    },
    "queue_full": {
        "en": "⏳ Your queue is full: {waiting} generations are already waiting. "
              "Send it again once one of them has started, or /cancel.",
        "ru": "⏳ Ваша очередь заполнена: уже ждут {waiting} генераций. "
              "Отправьте снова, когда одна из них начнётся, или /cancel.",
    },
    "toast_cancelling": {"en": "Cancelling…", "ru": "Отменяю…"},
    "toast_cannot_stop": {"en": "It has started, and the service cannot stop it: see the message.",
                          "ru": "Она уже началась, и сервис не может её остановить: см. сообщение."},
    "toast_stopping": {"en": "OK, not waiting for it any more.", "ru": "Хорошо, больше не ждём."},
    "toast_on_its_way": {"en": "Too late to stop: the result is on its way.",
                         "ru": "Останавливать поздно: результат уже в пути."},
    "toast_already_stopped": {"en": "It was stopped already.", "ru": "Она уже остановлена."},
    "toast_finished": {"en": "This generation has finished already.", "ru": "Эта генерация уже закончилась."},
    "toast_not_yours": {"en": "Only the person who started it can stop it.",
                        "ru": "Остановить её может только тот, кто её запустил."},
    "toast_gone": {"en": "This button no longer works.", "ru": "Эта кнопка больше не работает."},
    "state_queued": {"en": "in the queue", "ru": "в очереди"},
    "state_abandoned": {"en": "stopped waiting", "ru": "ожидание остановлено"},
    # --- #14 controls: cancel, stop waiting, the queue, progress (keys added above this line) ---
    # buttons answered with a toast (stale, repeated, someone else's)
    "toast_stale": {"en": "This button is out of date. Send /start for the menu.",
                    "ru": "Эта кнопка устарела. Отправьте /start, чтобы открыть меню."},
    "toast_started": {"en": "Already started: the result will arrive here.",
                      "ru": "Уже запущено: результат придёт сюда."},
    "toast_done": {"en": "This one is done: see the result above.",
                   "ru": "Эта генерация готова: результат выше."},
    "toast_someone_elses": {"en": "Only the person who asked for this can use its buttons.",
                            "ru": "Эти кнопки может нажимать только тот, кто запросил генерацию."},
    # a finished step, put away
    "answer_chosen": {"en": "{field}: {value}", "ru": "{field}: {value}"},
    "answer_skipped": {"en": "{field}: skipped", "ru": "{field}: пропущено"},
    "started_choice": {"en": "✅ {field}: {value}", "ru": "✅ {field}: {value}"},
    # the main menu, /models
    "btn_recent": {"en": "🕘 {name}", "ru": "🕘 {name}"},
    "models_title": {
        "en": "Models ({page}/{pages}). Tap a name to open it, or put its id after --model in /imagine:",
        "ru": "Модели ({page}/{pages}). Нажмите название, чтобы открыть модель, или укажите её id после --model "
              "в /imagine:",
    },
    "models_found": {"en": "Models matching “{words}” ({page}/{pages}):",
                     "ru": "Модели по запросу «{words}» ({page}/{pages}):"},
    "models_none": {"en": "No model matches “{words}”. Send /models to see them all.",
                    "ru": "По запросу «{words}» моделей нет. Отправьте /models, чтобы увидеть все."},
    "models_line": {"en": "• {name} — {id} · {price}", "ru": "• {name} — {id} · {price}"},
    # /imagine
    "imagine_ratios": {"en": "{title} takes these aspect ratios: {ratios}",
                       "ru": "Соотношения сторон для {title}: {ratios}"},
    "ambiguous_model": {
        "en": "“{value}” could be several models: {ids}. Put one of these ids after --model.",
        "ru": "«{value}» подходит нескольким моделям: {ids}. Укажите один из этих id после --model.",
    },
    "imagine_no_prompt": {"en": "{title} does not take a text prompt. Open it from /models instead.",
                          "ru": "{title} не принимает текстовое описание. Откройте её через /models."},
    "no_ratio": {
        "en": "{title} has no aspect ratio setting, so --ar {value} cannot be applied. Send the command without --ar.",
        "ru": "У {title} нет настройки соотношения сторон, поэтому --ar {value} применить нельзя. "
              "Отправьте команду без --ar.",
    },
    "bad_ratio_format": {"en": "“{value}” is not an aspect ratio: write it as W:H, for example 16:9.",
                         "ru": "«{value}» — не соотношение сторон: напишите его как Ш:В, например 16:9."},
    # what a user sent, checked against what the step takes
    "media_got_photo": {"en": "a photo", "ru": "фото"},
    "media_got_video": {"en": "a video", "ru": "видео"},
    "media_got_audio": {"en": "an audio file", "ru": "аудиофайл"},
    "media_got_file": {"en": "a {type} file", "ru": "файл {type}"},
    "media_wrong_kind": {"en": "{field} needs {what}, and this is {got}. Please send {what}.",
                         "ru": "{field}: нужно {what}, а это {got}. Пришлите {what}."},
    "media_wrong_format": {"en": "{field} takes {formats} files, and this one is {format}. Please send another.",
                           "ru": "{field}: подходят файлы {formats}, а этот — {format}. Пришлите другой."},
    "media_too_large": {"en": "This file is {size} MB, and {field} takes at most {limit} MB. "
                              "Please send a smaller one.",
                        "ru": "Этот файл весит {size} МБ, а {field}: не больше {limit} МБ. Пришлите файл поменьше."},
    # what a file's bytes say it is, when its name or type says otherwise (bot/incoming_media.py)
    "media_disguised": {"en": "{field} needs {what}, and this file is really {got}, whatever its name or type says. "
                              "Please send {what}.",
                        "ru": "{field}: нужно {what}, а этот файл на самом деле — {got}, что бы ни говорили его имя "
                              "или тип. Пришлите {what}."},
    "media_unrecognised": {"en": "{field} takes {formats} files, and this file's contents are none of them. "
                                 "Please send another.",
                           "ru": "{field}: подходят файлы {formats}, а содержимое этого файла ни одному из них "
                                 "не соответствует. Пришлите другой."},
    "media_unreadable": {"en": "I could not read this file from Telegram. Please send it again.",
                         "ru": "Не удалось получить этот файл из Telegram. Пришлите его ещё раз."},
    # offers outside a flow
    "offer_prompt": {"en": "✨ Generate this?", "ru": "✨ Создать это?"},
    "offer_edit": {"en": "🖌 Edit this photo with {name}?", "ru": "🖌 Изменить это фото с помощью {name}?"},
    "offer_edit_ask": {"en": "🖌 I can edit this photo with {name}.",
                       "ru": "🖌 Могу изменить это фото с помощью {name}."},
    # example prompts on model cards, two per task, one a line
    "card_examples": {"en": "For example:", "ru": "Например:"},
    "card_example": {"en": "💡 “{example}”", "ru": "💡 «{example}»"},
    "btn_use_example": {"en": "✨ Use this: {example}", "ru": "✨ Использовать: {example}"},
    "example_text-to-image": {
        "en": "a lighthouse on a cliff at sunset, oil painting\na red fox asleep in the snow, watercolor",
        "ru": "маяк на скале на закате, масляная живопись\nрыжая лиса спит в снегу, акварель",
    },
    "example_image-edit": {"en": "make the sky purple\nturn it into a pencil sketch",
                           "ru": "сделай небо фиолетовым\nпреврати фото в карандашный набросок"},
    "example_image-to-image": {"en": "the same scene in winter\nthe same picture as a comic book page",
                               "ru": "та же сцена зимой\nта же картинка в стиле комикса"},
    "example_text-to-video": {
        "en": "a paper boat sails down a rainy street, slow motion\na drone flies over a misty pine forest at dawn",
        "ru": "бумажный кораблик плывёт по дождливой улице, замедленная съёмка\n"
              "дрон летит над туманным сосновым лесом на рассвете",
    },
    "example_image-to-video": {
        "en": "the camera slowly moves closer, the wind stirs the hair\nclouds drift by, the lights come on",
        "ru": "камера медленно приближается, ветер шевелит волосы\nплывут облака, зажигаются огни",
    },
    "example_text-to-speech": {"en": "Hello! Thank you for calling. How can I help you today?",
                               "ru": "Здравствуйте! Спасибо за звонок. Чем я могу помочь?"},
    "example_sound-effect": {
        "en": "heavy rain on a tin roof\na wooden door creaks open slowly",
        "ru": "сильный дождь стучит по жестяной крыше\nмедленно со скрипом открывается деревянная дверь",
    },
    # the command menu (setMyCommands), per language
    "cmd_start": {"en": "Menu: create images, video, speech", "ru": "Меню: изображения, видео, речь"},
    "cmd_imagine": {"en": "Generate from one line: /imagine <prompt>",
                    "ru": "Генерация одной строкой: /imagine <описание>"},
    "cmd_models": {"en": "Every model with its id and price", "ru": "Все модели с id и ценами"},
    "cmd_history": {"en": "Your recent generations", "ru": "Ваши последние генерации"},
    "cmd_balance": {"en": "Your credits", "ru": "Ваши кредиты"},
    "cmd_buy": {"en": "Top up with Telegram Stars", "ru": "Пополнить звёздами Telegram"},
    "cmd_cancel": {"en": "Leave the current step", "ru": "Выйти из текущего шага"},
    "cmd_lang": {"en": "Language: /lang ru or /lang en", "ru": "Язык: /lang ru или /lang en"},
    "cmd_help": {"en": "What this bot does, with examples", "ru": "Что умеет бот, с примерами"},
    # --- #14 dialogue: menus, commands, groups, discovery (keys added above this line) ---
}


def text(lang: str, key: str, **values: object) -> str:
    entry = TEXTS[key]
    template = entry.get(lang) or entry["en"]
    return template.format(**values) if values else template
