"""Every sentence of the renter's page, in English and Japanese, and the choice between them.

Why a table of whole sentences with named slots and not words glued together: Japanese
puts the figures in another order ("本日 2.1 GB / 3.0 GB 使用"), so a sentence is the unit
of translation. A key missing in one language is a test failure (tests/unit/test_page.py),
never an English word on a Japanese page.
"""

from __future__ import annotations

from typing import Any

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Connection status",
        "default_brand": "Pocket WiFi",
        "state.full_speed": "Full speed",
        "state.connected": "Connected",
        "state.slow_signal": "Slow: weak signal. Moving closer to a window may help.",
        "state.slow_busy": "Slow: the mobile network is busy here. It usually passes by itself.",
        "state.slow_cap": "Slow: this SIM's data allowance is used up. Switching to another SIM.",
        "state.switching": "Switching to a better SIM, back in about {seconds} s.",
        "state.no_service": "No service since {since}. The router is retrying by itself.",
        "state.no_service_now": "No service. The router is retrying by itself.",
        "state.starting": "Starting up.",
        "state.stopped": "Stopped.",
        "state.unknown": "Status not available right now.",
        "cause.not_registered": "No mobile network answers here.",
        "cause.no_data": "The network answers but data does not get through.",
        "section.data": "Data",
        "section.signal": "Signal",
        "section.today": "Today's speed",
        "data.day": "{used} of {cap} today, resets at midnight ({zone})",
        "data.month": "{used} of {cap} this month, resets {when} ({zone})",
        "data.rolling": "{used} of {cap} in the last {hours} hours",
        "data.price_step": "{used} of {cap} this month before the next price step (same speed)",
        "data.price_step_passed": "{used} this month: past the {cap} price step (same speed)",
        "data.unknown_use": "Limit {cap} ({window}); use not known yet",
        "data.none": "No data limit (up to {kbps} kbit/s)",
        "data.none_no_rate": "No data limit",
        "data.left": "{left} left",
        "data.after_cap": "then {rate}",
        "data.rate": "{kbps} kbit/s",
        "data.low_speed": "low speed",
        "data.slow_at": "at this rate from about {when}",
        "data.used_up_until": "used up: {rate} until about {when}",
        "data.used_up": "used up: {rate}",
        "data.no_plan": "Getting a SIM for you.",
        "window.day": "per day",
        "window.month": "per month",
        "window.rolling": "per {hours} hours",
        "window.none": "no limit",
        "low.left": "Data running low: {left} left of {cap} {window}.",
        "low.at": "At this rate it runs out at about {when}.",
        "low.swap": "The router moves to another SIM before then when it can, to keep you at full speed.",
        "signal.bars": "{bars} of 4 bars",
        "signal.network": "Network: {name}",
        "signal.no_network": "No network",
        "sim.ends": "SIM ending {tail}",
        "notice.planned": "A ~{pause}-second pause in about {minutes} min, to keep you at full speed.",
        "notice.planned_soon": "A ~{pause}-second pause within a minute, to keep you at full speed.",
        "notice.planned_lull": "A ~{pause}-second pause within {minutes} min, when you pause, "
                               "to keep you at full speed.",
        "swap.ok": "At {at}: switched SIM ({why}); the connection paused for {seconds} s.",
        "swap.failed": "At {at}: a SIM switch ({why}) did not succeed; still on the previous SIM "
                       "(paused {seconds} s).",
        "why.allowance": "before the data limit",
        "why.throttled": "the SIM had been slowed",
        "why.command": "planned by your operator",
        "why.no_service": "no service",
        "why.auth_failed": "the network refused the SIM",
        "why.boot": "start-up",
        "why.other": "maintenance",
        "plot.now": "now {rate}",
        "plot.label": "Throughput today, 0 to 24 h; highest {rate}",
        "updated": "Updated {at} ({zone}). Reload for new figures.",
        "support": "Support: {phone}",
        "lang.other": "日本語",
    },
    "ja": {
        "title": "接続状況",
        "default_brand": "ポケットWiFi",
        "state.full_speed": "高速で接続中",
        "state.connected": "接続中",
        "state.slow_signal": "低速：電波が弱い状態です。窓の近くに移動すると改善することがあります。",
        "state.slow_busy": "低速：この場所のモバイル回線が混雑しています。通常は自然に回復します。",
        "state.slow_cap": "低速：このSIMのデータ容量を使い切りました。別のSIMに切り替えます。",
        "state.switching": "より良いSIMに切り替え中です。約{seconds}秒で戻ります。",
        "state.no_service": "{since}から圏外です。ルーターが自動で再接続を試みています。",
        "state.no_service_now": "圏外です。ルーターが自動で再接続を試みています。",
        "state.starting": "起動中です。",
        "state.stopped": "停止しています。",
        "state.unknown": "現在、状態を取得できません。",
        "cause.not_registered": "この場所ではモバイル回線が見つかりません。",
        "cause.no_data": "回線にはつながっていますが、データが通りません。",
        "section.data": "データ通信量",
        "section.signal": "電波",
        "section.today": "本日の通信速度",
        "data.day": "本日 {used} / {cap} 使用、0時（{zone}）にリセット",
        "data.month": "今月 {used} / {cap} 使用、{when}（{zone}）にリセット",
        "data.rolling": "直近{hours}時間 {used} / {cap} 使用",
        "data.price_step": "今月 {used} / {cap} 使用、次の料金段階まで（速度は変わりません）",
        "data.price_step_passed": "今月 {used} 使用、{cap} の料金段階を超えました（速度は変わりません）",
        "data.unknown_use": "上限 {cap}（{window}）、使用量はまだ不明です",
        "data.none": "容量制限なし（最大 {kbps} kbps）",
        "data.none_no_rate": "容量制限なし",
        "data.left": "残り {left}",
        "data.after_cap": "超過後は {rate}",
        "data.rate": "{kbps} kbps",
        "data.low_speed": "低速",
        "data.slow_at": "この速度だと {when} ごろに上限",
        "data.used_up_until": "上限到達：{when} ごろまで {rate}",
        "data.used_up": "上限到達：{rate}",
        "data.no_plan": "SIMを準備しています。",
        "window.day": "1日あたり",
        "window.month": "1か月あたり",
        "window.rolling": "{hours}時間あたり",
        "window.none": "制限なし",
        "low.left": "データ残量が少なくなっています：{window} {cap} のうち残り {left}。",
        "low.at": "この速度だと {when} ごろに上限に達します。",
        "low.swap": "それまでに可能であれば別のSIMに切り替え、高速通信を維持します。",
        "signal.bars": "4本中{bars}本",
        "signal.network": "回線：{name}",
        "signal.no_network": "回線なし",
        "sim.ends": "SIM末尾 {tail}",
        "notice.planned": "約{minutes}分後に約{pause}秒の一時的な中断があります（高速通信を維持するため）。",
        "notice.planned_soon": "1分以内に約{pause}秒の一時的な中断があります（高速通信を維持するため）。",
        "notice.planned_lull": "{minutes}分以内、通信が途切れたときに約{pause}秒の一時的な中断があります"
                               "（高速通信を維持するため）。",
        "swap.ok": "{at}にSIMを切り替えました（{why}）。通信の中断は{seconds}秒でした。",
        "swap.failed": "{at}のSIM切り替え（{why}）はできませんでした。元のSIMのままです（中断{seconds}秒）。",
        "why.allowance": "容量上限の前に",
        "why.throttled": "SIMが低速化されたため",
        "why.command": "運営会社の計画による",
        "why.no_service": "圏外のため",
        "why.auth_failed": "回線がSIMを拒否したため",
        "why.boot": "起動時",
        "why.other": "保守",
        "plot.now": "現在 {rate}",
        "plot.label": "本日の通信速度（0〜24時）、最大 {rate}",
        "updated": "{at}（{zone}）更新。再読み込みで最新の値を表示します。",
        "support": "サポート：{phone}",
        "lang.other": "English",
    },
}

NETWORK_NAMES = {
    "44010": "NTT docomo", "44011": "Rakuten Mobile", "44020": "SoftBank", "44021": "SoftBank",
    "44050": "au", "44051": "au", "44052": "au", "44053": "au", "44054": "au",
}
"""Japan's mobile networks by MCC-MNC (the ITU's list, E.212 Annex): the modem reports the
network as numbers (agent/core/radio.py asks for the numeric form, which billing needs);
a renter knows it by name. Another network is shown as its MCC-MNC."""


def say(lang: str, key: str, **slots: Any) -> str:
    """The sentence ``key`` in ``lang`` with its slots filled."""
    return WORDS[lang][key].format(**slots)


def choose(accept_language: str | None, offered: tuple[str, ...], override: str | None = None) -> str:
    """The language to answer in: ``override`` (the page's own language link) if offered,
    else the first of the browser's ``Accept-Language`` ranges (RFC 9110 12.5.4, by their
    q-values) whose primary tag is offered, else the first offered. A malformed header is
    read as far as it makes sense, never an error."""
    if override in offered:
        return str(override)
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")[:MAX_RANGES]):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in offered and q > 0:
            ranked.append((-q, position, primary))
    return min(ranked)[2] if ranked else offered[0]


MAX_RANGES = 20
"""Language ranges of Accept-Language read (browsers send 2-6; the header's size is bounded
by the server anyway)."""
