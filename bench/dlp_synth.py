"""Generate a synthetic German DLP evaluation set: valid identifiers in varied sentences, plus look-alikes.

Usage: .venv/bin/python bench/dlp_synth.py [--n 1500] [--seed 7] [--out bench/data/synth_de.jsonl]
Values come from Faker (de_DE) and python-stdnum with valid checksums; negatives are numbers that look
like identifiers but fail their checksum or context (labelled as nothing). Output lines follow the
dlp_eval.py format: {"text": ..., "entities": [{"start", "end", "label"}]}.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
from pathlib import Path

import phonenumbers
from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr
from stdnum.iso7064 import mod_11_10

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services" / "dlp"))
from schleuse_dlp.domain.checksums import icao_check_digit, kvnr_check_digit, svnr_check_digit

AREA = [
    "30",
    "40",
    "89",
    "69",
    "221",
    "211",
    "711",
    "351",
    "341",
    "511",
    "911",
    "201",
    "231",
    "6131",
    "7071",
    "9131",
    "3641",
    "421",
    "228",
    "761",
    "621",
    "2241",
    "8031",
    "4131",
    "5121",
]
MOBILE = ["151", "152", "160", "162", "170", "171", "172", "173", "175", "176", "177", "178", "179", "157", "163"]
DOC_ALPHA = "CFGHJKLMNPRTVWXYZ0123456789"


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        Faker.seed(seed)
        self.f = Faker("de_DE")

    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    # --- valid values -------------------------------------------------------------------------
    def phone(self) -> str:
        while True:
            if self.r.random() < 0.15:
                raw = self.r.choice(["+43 1 {} {}", "+41 44 {} {}", "+33 1 {} {}", "+44 20 {} {}"]).format(
                    self.digits(3), self.digits(4)
                )
            else:
                mobile = self.r.random() < 0.5
                area = self.r.choice(MOBILE if mobile else AREA)
                sub = self.digits(7 if mobile else self.r.randint(5, 8))
                fmt = self.r.choice(
                    [
                        "0{a} {s}",
                        "0{a}/{s}",
                        "(0{a}) {s}",
                        "0{a}-{s}",
                        "+49 {a} {s}",
                        "+49 (0){a} {s}",
                        "0049 {a} {s}",
                        "+49{a}{s}",
                        "0{a} {s1} {s2}",
                    ]
                )
                raw = fmt.format(a=area, s=sub, s1=sub[:3], s2=sub[3:])
            if phonenumbers.is_valid_number(phonenumbers.parse(raw, "DE")):
                return raw

    def iban(self) -> str:
        value = self.f.iban()
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if self.r.random() < 0.5 else value

    def card(self) -> str:
        value = self.f.credit_card_number()
        if len(value) == 16 and self.r.random() < 0.5:
            return " ".join(value[i : i + 4] for i in range(0, 16, 4))
        return value

    def tax_id(self) -> str:
        while True:
            body = str(self.r.randint(1, 9)) + self.digits(9)
            value = body + mod_11_10.calc_check_digit(body)
            if idnr.is_valid(value):
                return value if self.r.random() < 0.6 else f"{value[:2]} {value[2:5]} {value[5:8]} {value[8:]}"

    def tax_number(self) -> str:
        fmt = self.r.choice(["{}/{}/{}", "{}/{}/{}"])
        return fmt.format(
            self.r.choice(["181", "143", "201", "117", "133", "21", "93"]), self.digits(3), self.digits(5)
        )

    def svnr(self) -> str:
        dob = self.f.date_of_birth(minimum_age=18, maximum_age=80)
        first11 = f"{self.r.randint(10, 89)}{dob:%d%m%y}{self.f.last_name()[0].upper()}{self.digits(2)}"
        value = first11 + svnr_check_digit(first11)
        return value if self.r.random() < 0.5 else f"{value[:2]} {value[2:8]} {value[8]} {value[9:]}"

    def kvnr(self) -> str:
        first9 = self.r.choice(string.ascii_uppercase) + self.digits(8)
        return first9 + kvnr_check_digit(first9)

    def document(self, passport: bool) -> str:
        first = self.r.choice("CFGHJK" if passport else "LMNPRTVWXY")
        body = first + "".join(self.r.choice(DOC_ALPHA) for _ in range(8))
        if not any(c.isdigit() for c in body):
            body = body[:-1] + "7"
        return body + icao_check_digit(body)

    def dob(self) -> str:
        d = self.f.date_of_birth(minimum_age=1, maximum_age=95)
        months = [
            "Januar",
            "Februar",
            "März",
            "April",
            "Mai",
            "Juni",
            "Juli",
            "August",
            "September",
            "Oktober",
            "November",
            "Dezember",
        ]
        return self.r.choice(
            [
                f"{d:%d.%m.%Y}",
                f"{d.day}.{d.month}.{d.year}",
                f"{d:%Y-%m-%d}",
                f"{d.day}. {months[d.month - 1]} {d.year}",
            ]
        )

    def secret(self) -> str:
        alnum = string.ascii_letters + string.digits
        rnd = lambda n: "".join(self.r.choice(alnum) for _ in range(n))  # noqa: E731
        return self.r.choice(
            [
                f"sk-proj-{rnd(40)}",
                f"ghp_{rnd(36)}",
                "AKIA" + "".join(self.r.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
                f"xoxb-{self.digits(11)}-{rnd(24)}",
                f"AIza{rnd(35)}",
                f"sk_live_{rnd(24)}",
            ]
        )

    def plate(self) -> str:
        """Faker's plates, kept only when they are valid (at most 8 characters without separators)."""
        while True:
            value = self.f.license_plate()
            if len(value.replace("-", "").replace(" ", "")) <= 8:
                return value.replace("-", " ", 1) if self.r.random() < 0.3 else value

    def address(self) -> str:
        street = self.f.street_address()
        city = f"{self.f.postcode()} {self.f.city()}"
        return self.r.choice([f"{street}, {city}", street, city])


def build(g: Gen, n: int) -> list[dict]:
    """n messages; each has 1-3 sentences, positives and negatives mixed."""
    positives = [
        (
            "PHONE",
            g.phone,
            [
                "Sie erreichen mich unter {}.",
                "Bitte rufen Sie {} zurück.",
                "Telefon: {}",
                "Meine neue Nummer ist {}, die alte gilt nicht mehr.",
                "Rückruf bitte an {} bis 17 Uhr.",
            ],
        ),
        (
            "EMAIL",
            g.f.email,
            ["Schreiben Sie an {}.", "Kontakt: {}", "Die Mail ging an {} raus.", "Bitte {} in Kopie setzen."],
        ),
        (
            "IBAN",
            g.iban,
            [
                "Bitte überweisen Sie auf {}.",
                "IBAN: {}",
                "Die Erstattung geht an das Konto {}.",
                "Meine Bankverbindung hat sich geändert, neu ist {}.",
            ],
        ),
        ("BIC", g.f.swift, ["BIC: {}", "Der BIC der Bank lautet {}.", "SWIFT-Code {} bitte ergänzen."]),
        (
            "CREDIT_CARD",
            g.card,
            ["Ich habe mit der Karte {} bezahlt.", "Kreditkarte {} wurde belastet.", "Die Kartennummer lautet {}."],
        ),
        (
            "TAX_ID",
            g.tax_id,
            [
                "Meine Steuer-ID ist {}.",
                "Steuerliche Identifikationsnummer: {}",
                "Die IdNr {} steht auf dem Bescheid.",
                "Bitte tragen Sie {} als Identifikationsnummer ein.",
            ],
        ),
        (
            "TAX_NUMBER",
            g.tax_number,
            ["Steuernummer {}", "Unsere Steuernummer lautet {}.", "Das Finanzamt führt uns unter {}."],
        ),
        (
            "SOCIAL_SECURITY",
            g.svnr,
            [
                "Sozialversicherungsnummer: {}",
                "Meine Rentenversicherungsnummer ist {}.",
                "SV-Nr. {} liegt der Personalabteilung vor.",
            ],
        ),
        (
            "HEALTH_INSURANCE",
            g.kvnr,
            ["Versichertennummer {}", "Die Krankenversichertennummer lautet {}.", "Auf der Karte steht {}."],
        ),
        (
            "ID_CARD",
            lambda: g.document(False),
            ["Personalausweisnummer {}", "Die Ausweisnummer ist {}.", "Ausweis {} gültig bis 2031."],
        ),
        ("PASSPORT", lambda: g.document(True), ["Reisepassnummer {}", "Mein Pass hat die Nummer {}."]),
        (
            "LICENSE_PLATE",
            g.plate,
            [
                "Das Fahrzeug mit dem Kennzeichen {} stand falsch.",
                "Kennzeichen: {}",
                "Der Wagen {} wurde abgeschleppt.",
            ],
        ),
        (
            "IP_ADDRESS",
            lambda: g.f.ipv4() if g.r.random() < 0.7 else g.f.ipv6(),
            ["Der Zugriff kam von {}.", "Bitte die IP {} freischalten.", "Server {} antwortet nicht."],
        ),
        (
            "DATE_OF_BIRTH",
            g.dob,
            [
                "Geburtsdatum: {}",
                "Der Patient, geb. am {}, war anwesend.",
                "Sie ist am {} geboren.",
                "Patientin (* {}) klagt über Schmerzen.",
            ],
        ),
        (
            "ADDRESS",
            g.address,
            [
                "Die Lieferadresse lautet {}.",
                "Ich wohne jetzt in der {}.",
                "Anschrift: {}",
                "Bitte schicken Sie die Unterlagen an {}.",
            ],
        ),
        ("SECRET", g.secret, ["Der API-Key lautet {}.", "Hier ist das Token: {}", "Nutze {} für den Zugriff."]),
        (
            "PERSON",
            lambda: f"{g.f.first_name()} {g.f.last_name()}" if g.r.random() < 0.8 else g.f.last_name(),
            [
                "Gestern hat {} angerufen.",
                "Bitte leiten Sie das an {} weiter.",
                "Sehr geehrte Frau {}, vielen Dank.",
                "Mit freundlichen Grüßen\n{}",
                "Mein Name ist {} und ich habe eine Frage.",
            ],
        ),
    ]

    def broken_iban() -> str:
        v = g.f.iban()
        while True:
            w = v[:-1] + str((int(v[-1]) + g.r.randint(1, 9)) % 10)
            if not std_iban.is_valid(w):
                return w

    def broken_luhn() -> str:
        v = g.f.credit_card_number()
        w = v[:-1] + str((int(v[-1]) + 1) % 10)
        return w if not luhn.is_valid(w) else v[:-1] + str((int(v[-1]) + 2) % 10)

    def broken_idnr() -> str:
        while True:
            v = str(g.r.randint(1, 9)) + g.digits(10)
            if not idnr.is_valid(v):
                return v

    def broken_svnr() -> str:
        first11 = f"{g.r.randint(10, 89)}{g.f.date_of_birth():%d%m%y}{g.f.last_name()[0].upper()}{g.digits(2)}"
        return first11 + str((int(svnr_check_digit(first11)) + 1) % 10)

    def broken_kvnr() -> str:
        first9 = g.r.choice(string.ascii_uppercase) + g.digits(8)
        return first9 + str((int(kvnr_check_digit(first9)) + 1) % 10)

    negatives = [
        (broken_iban, ["Die Referenz {} ist keine gültige Kontonummer.", "Code {} wurde abgelehnt."]),
        (broken_luhn, ["Die Seriennummer {} steht auf dem Gerät.", "Vorgang {} ist abgeschlossen."]),
        (broken_idnr, ["Bestellnummer {} wurde versandt.", "Die Auftragsnummer lautet {}."]),
        (broken_svnr, ["Aktenzeichen {} bitte angeben."]),
        (broken_kvnr, ["Artikel {} ist ausverkauft.", "Ticket {} wurde geschlossen."]),
        (
            lambda: f"{g.r.randint(1, 28):02d}.{g.r.randint(1, 12):02d}.20{g.r.randint(24, 27)}",
            ["Der Termin ist am {}.", "Die Frist endet am {}."],
        ),
        (
            lambda: f"{g.r.randint(1, 9)}.{g.r.randint(0, 20)}.{g.r.randint(0, 9)}.{g.r.randint(0, 9)}",
            ["Bitte auf Version {} aktualisieren."],
        ),
        (lambda: f"{g.r.randint(10, 99)}.{g.digits(3)},{g.digits(2)} Euro", ["Der Umsatz betrug {}."]),
        (lambda: f"{g.r.randint(10000, 99999)} Mitarbeiter", ["Das Unternehmen hat {}."]),
        (lambda: g.digits(8), ["Die Rechnung {} ist bezahlt.", "Kundennummer {} bitte angeben."]),
        (
            lambda: "",
            [
                "Können Sie mir bei der Formulierung einer Absage helfen?",
                "Fasse bitte den Bericht über das dritte Quartal zusammen.",
                "Wie funktioniert die Reisekostenabrechnung?",
                "Der Server war gestern zwischen 10 und 12 Uhr nicht erreichbar.",
                "Ich habe mein Passwort vergessen, wie setze ich es zurück?",
            ],
        ),
    ]
    rows = []
    for _ in range(n):
        text, ents = "", []
        for _ in range(g.r.randint(1, 3)):
            if g.r.random() < 0.72:
                label, make, templates = g.r.choice(positives)
                value = make()
                tpl = g.r.choice(templates)
                prefix = tpl[: tpl.index("{}")]
                start = len(text) + (1 if text else 0) + len(prefix)
                sentence = tpl.format(value)
                ents.append({"start": start, "end": start + len(value), "label": label})
            else:
                make, templates = g.r.choice(negatives)
                sentence = g.r.choice(templates).format(make())
            text = f"{text} {sentence}" if text else sentence
        rows.append({"text": text, "entities": ents})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/data/synth_de.jsonl")
    args = ap.parse_args()
    rows = build(Gen(args.seed), args.n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} messages with {sum(len(r['entities']) for r in rows)} entities to {args.out}")


if __name__ == "__main__":
    main()
