"""Seed data for the sandbox: the contacts, campaigns and asset types the samples use.

Plain constants so a test can read exactly what the server starts with. Contact names are
realistic and international on purpose (accents, apostrophes, non-Latin scripts, ``+`` tags in
e-mail addresses): those are what break importers in real life.
"""

from __future__ import annotations

SITE_ID = 42
SITE_NAME = "Sandbox"
USER_ID = 7
USER_DISPLAY_NAME = "API User"

#: Contacts shown by ``describe()`` as examples (a plain one, accents, a ``+`` tag).
EXAMPLE_CONTACTS = 4

FIRST_ACTIVITY_ID = 100001
FIRST_NEW_CONTACT_ID = 2121

# External asset types set up "beforehand" in the sandbox site, each with its activity types.
ASSET_TYPES: dict[str, tuple[str, ...]] = {
    "Tradeshow": ("Visited Booth", "Viewed a Demo", "Registered", "Attended"),
    "Webinar": ("Registered", "Attended", "Watched Recording"),
    "Conference": ("Registered", "Attended", "Spoke"),
}

CAMPAIGNS: dict[int, str] = {
    37: "Spring Expo 2026",
    38: "Webinar Series 2026",
    39: "Customer Summit 2026",
}

# (id, first name, last name, e-mail address); e-mail addresses are unique and lower case.
CONTACTS: tuple[tuple[int, str, str, str], ...] = (
    (2001, "José", "Núñez", "jose.nunez@example.com"),
    (2002, "Zoë", "Müller", "zoe.muller+events@example.org"),
    (2003, "François", "Dubois", "francois.dubois@example.net"),
    (2004, "Søren", "Østergaard", "soren.ostergaard@example.co.uk"),
    (2005, "Łukasz", "Wróbel", "lukasz.wrobel@example.de"),
    (2006, "花子", "佐藤", "hanako.sato@example.jp"),
    (2007, "Conor", "O'Brien", "conor.o'brien@example.ie"),
    (2008, "Maria", "Garcia", "maria.garcia@example.net"),
    (2009, "James", "Smith", "james.smith@example.co.uk"),
    (2010, "Aisha", "Khan", "aisha.khan@example.de"),
    (2011, "Björn", "Andersson", "bjorn.andersson@example.com"),
    (2012, "Chloé", "Lefèvre", "chloe.lefevre@example.org"),
    (2013, "Mateo", "Fernández", "mateo.fernandez@example.net"),
    (2014, "Ingrid", "Bjørnstad", "ingrid.bjornstad@example.co.uk"),
    (2015, "Paweł", "Kowalski", "pawel.kowalski@example.de"),
    (2016, "Élodie", "Girard", "elodie.girard@example.com"),
    (2017, "Jürgen", "Schäfer", "jurgen.schafer@example.org"),
    (2018, "Priya", "Sharma", "priya.sharma@example.net"),
    (2019, "Wei", "Zhang", "wei.zhang@example.co.uk"),
    (2020, "Olivia", "Brown", "olivia.brown@example.de"),
    (2021, "Noah", "Johnson", "noah.johnson@example.com"),
    (2022, "Emma", "Wilson", "emma.wilson@example.org"),
    (2023, "Liam", "Taylor", "liam.taylor+expo@example.net"),
    (2024, "Sofia", "Rossi", "sofia.rossi@example.co.uk"),
    (2025, "Lucía", "Martínez", "lucia.martinez@example.de"),
    (2026, "Giulia", "Bianchi", "giulia.bianchi@example.com"),
    (2027, "Hiroshi", "Tanaka", "hiroshi.tanaka@example.org"),
    (2028, "Yuki", "Yamamoto", "yuki.yamamoto@example.net"),
    (2029, "Fatima", "Al-Sayed", "fatima.al-sayed@example.co.uk"),
    (2030, "Omar", "Haddad", "omar.haddad@example.de"),
    (2031, "Nikolaj", "Sørensen", "nikolaj.sorensen@example.com"),
    (2032, "Ana", "Sousa", "ana.sousa@example.org"),
    (2033, "João", "Gonçalves", "joao.goncalves@example.net"),
    (2034, "Krisztina", "Szabó", "krisztina.szabo@example.co.uk"),
    (2035, "Dávid", "Kovács", "david.kovacs@example.de"),
    (2036, "Tomáš", "Dvořák", "tomas.dvorak@example.com"),
    (2037, "Zuzana", "Nováková", "zuzana.novakova@example.org"),
    (2038, "Ewa", "Wiśniewska", "ewa.wisniewska@example.net"),
    (2039, "Mikko", "Järvinen", "mikko.jarvinen@example.co.uk"),
    (2040, "Aino", "Mäkinen", "aino.makinen+expo@example.de"),
    (2041, "Sinéad", "Ní Bhriain", "sinead.nibhriain@example.com"),
    (2042, "Seán", "Ó Súilleabháin", "sean.osuilleabhain@example.org"),
    (2043, "Ethan", "Davies", "ethan.davies@example.net"),
    (2044, "Grace", "Evans", "grace.evans@example.co.uk"),
    (2045, "Ifeoma", "Okafor", "ifeoma.okafor@example.de"),
    (2046, "Chinedu", "Eze", "chinedu.eze@example.com"),
    (2047, "Thandiwe", "Dlamini", "thandiwe.dlamini@example.org"),
    (2048, "Kwame", "Mensah", "kwame.mensah@example.net"),
    (2049, "Ahmet", "Yılmaz", "ahmet.yilmaz@example.co.uk"),  # noqa: RUF001 (Turkish dotless i)
    (2050, "Elif", "Şahin", "elif.sahin@example.de"),
    (2051, "Dimitris", "Papadopoulos", "dimitris.papadopoulos@example.com"),
    (2052, "Eleni", "Georgiou", "eleni.georgiou@example.org"),
    (2053, "Ivan", "Petrov", "ivan.petrov@example.net"),
    (2054, "Olga", "Smirnova", "olga.smirnova@example.co.uk"),
    (2055, "Hannah", "Becker", "hannah.becker@example.de"),
    (2056, "Felix", "Wagner", "felix.wagner@example.com"),
    (2057, "Lena", "Hoffmann", "lena.hoffmann+expo@example.org"),
    (2058, "Max", "Schmidt", "max.schmidt@example.net"),
    (2059, "Camille", "Bernard", "camille.bernard@example.co.uk"),
    (2060, "Hugo", "Moreau", "hugo.moreau@example.de"),
    (2061, "Isabel", "Díaz", "isabel.diaz@example.com"),
    (2062, "Pablo", "Ruiz", "pablo.ruiz@example.org"),
    (2063, "Carmen", "López", "carmen.lopez@example.net"),
    (2064, "Diego", "Torres", "diego.torres@example.co.uk"),
    (2065, "Marta", "Sánchez", "marta.sanchez@example.de"),
    (2066, "Javier", "Romero", "javier.romero@example.com"),
    (2067, "Anders", "Nilsson", "anders.nilsson@example.org"),
    (2068, "Astrid", "Lindqvist", "astrid.lindqvist@example.net"),
    (2069, "Freya", "Hansen", "freya.hansen@example.co.uk"),
    (2070, "Magnus", "Johansen", "magnus.johansen@example.de"),
    (2071, "Sigrid", "Eriksen", "sigrid.eriksen@example.com"),
    (2072, "Lars", "Pedersen", "lars.pedersen@example.org"),
    (2073, "Rahul", "Gupta", "rahul.gupta@example.net"),
    (2074, "Ananya", "Iyer", "ananya.iyer+expo@example.co.uk"),
    (2075, "Arjun", "Nair", "arjun.nair@example.de"),
    (2076, "Meera", "Reddy", "meera.reddy@example.com"),
    (2077, "Vikram", "Singh", "vikram.singh@example.org"),
    (2078, "Kavya", "Menon", "kavya.menon@example.net"),
    (2079, "Lucas", "Silva", "lucas.silva@example.co.uk"),
    (2080, "Beatriz", "Costa", "beatriz.costa@example.de"),
    (2081, "Gabriel", "Oliveira", "gabriel.oliveira@example.com"),
    (2082, "Laura", "Pereira", "laura.pereira@example.org"),
    (2083, "Rafael", "Almeida", "rafael.almeida@example.net"),
    (2084, "Mariana", "Rocha", "mariana.rocha@example.co.uk"),
    (2085, "Daniel", "Cohen", "daniel.cohen@example.de"),
    (2086, "Noa", "Levi", "noa.levi@example.com"),
    (2087, "Yosef", "Mizrahi", "yosef.mizrahi@example.org"),
    (2088, "Tamar", "Friedman", "tamar.friedman@example.net"),
    (2089, "Ari", "Katz", "ari.katz@example.co.uk"),
    (2090, "Maya", "Shapiro", "maya.shapiro@example.de"),
    (2091, "Charlotte", "Dupont", "charlotte.dupont+expo@example.com"),
    (2092, "Louis", "Lambert", "louis.lambert@example.org"),
    (2093, "Manon", "Rousseau", "manon.rousseau@example.net"),
    (2094, "Théo", "Fontaine", "theo.fontaine@example.co.uk"),
    (2095, "Inès", "Mercier", "ines.mercier@example.de"),
    (2096, "Jules", "Faure", "jules.faure@example.com"),
    (2097, "Emily", "Clarke", "emily.clarke@example.org"),
    (2098, "Oliver", "Hughes", "oliver.hughes@example.net"),
    (2099, "Amelia", "Wright", "amelia.wright@example.co.uk"),
    (2100, "George", "Walker", "george.walker@example.de"),
    (2101, "Isla", "Robinson", "isla.robinson@example.com"),
    (2102, "Harry", "Thompson", "harry.thompson@example.org"),
    (2103, "An", "Nguyễn Văn", "an.nguyenvan@example.net"),
    (2104, "Bích", "Trần Thị", "bich.tranthi@example.co.uk"),
    (2105, "Min-jun", "Kim", "min-jun.kim@example.de"),
    (2106, "Ji-woo", "Park", "ji-woo.park@example.com"),
    (2107, "Seo-yeon", "Lee", "seo-yeon.lee@example.org"),
    (2108, "Woo-jin", "Choi", "woo-jin.choi+expo@example.net"),
    (2109, "Siobhan", "Murphy", "siobhan.murphy@example.co.uk"),
    (2110, "Ciarán", "Kelly", "ciaran.kelly@example.de"),
    (2111, "Niamh", "Byrne", "niamh.byrne@example.com"),
    (2112, "Declan", "Walsh", "declan.walsh@example.org"),
    (2113, "Aoife", "Ryan", "aoife.ryan@example.net"),
    (2114, "Pádraig", "Doyle", "padraig.doyle@example.co.uk"),
    (2115, "Renée", "Zellweger-Smith", "renee.zellweger-smith@example.de"),
    (2116, "Ólafur", "Jónsson", "olafur.jonsson@example.com"),
    (2117, "Guðrún", "Sigurðardóttir", "gudrun.sigurdardottir@example.org"),
    (2118, "Ævar", "Þórsson", "aevar.thorsson@example.net"),
    (2119, "Zoltán", "Horváth", "zoltan.horvath@example.co.uk"),
    (2120, "Ágnes", "Tóth", "agnes.toth@example.de"),
)


def describe(*, asset_types: bool = True, all_contacts: bool = False) -> str:
    """What a fresh sandbox holds, for ``check --sandbox`` and ``sandbox --help``: enough to
    write a mapping that works without reading this file. A few contacts as examples, or
    every one with ``all_contacts`` (``check --sandbox --contacts``)."""
    ids = [contact[0] for contact in CONTACTS]
    shown = CONTACTS if all_contacts else [*CONTACTS[: EXAMPLE_CONTACTS - 1], CONTACTS[7]]
    lines = [
        "The sandbox holds (a fresh copy every time it starts):",
        f"  Contacts: {len(CONTACTS)}, ids {min(ids)} to {max(ids)}, each with an email address"
        + (":" if all_contacts else "; for example"),
        *(f"    {cid}  {email}  ({first} {last})" for cid, first, last, email in shown),
        "  Campaigns: " + ", ".join(f"{cid} {name!r}" for cid, name in CAMPAIGNS.items()),
    ]
    if asset_types:
        lines.append("  External asset types and their activity types:")
        lines.extend(f"    {asset}: {', '.join(kinds)}" for asset, kinds in ASSET_TYPES.items())
    if not all_contacts:
        lines.append("  To list every contact: eloqua-import check --sandbox --contacts")
    return "\n".join(lines)
