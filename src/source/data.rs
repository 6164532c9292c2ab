//! Word lists and per-nationality formats for the embedded source. Small on purpose:
//! enough variety for realistic aggregates (users by country and gender) and for the
//! postcode-as-number-or-string difference the real API has.

/// One nationality as the API reports it.
pub struct Nationality {
    pub code: &'static str,
    pub country: &'static str,
    pub states: &'static [&'static str],
    pub cities: &'static [&'static str],
    pub streets: &'static [&'static str],
    /// Postcode pattern: `9` a digit, `A` an upper-case letter; numeric patterns are
    /// returned as JSON numbers, like the real API does for these countries.
    pub postcode: &'static str,
    pub postcode_is_number: bool,
    /// Phone pattern, `9` a digit.
    pub phone: &'static str,
    pub id_name: &'static str,
    /// Pattern of the national id value; `None`: the API returns null.
    pub id_value: Option<&'static str>,
}

pub const NATIONALITIES: &[Nationality] = &[
    Nationality {
        code: "US",
        country: "United States",
        states: &["Michigan", "Texas", "Oregon", "New York", "Florida", "Ohio"],
        cities: &["Billings", "Austin", "Salem", "Buffalo", "Tampa", "Dayton"],
        streets: &[
            "Valwood Pkwy",
            "Hickory Creek Dr",
            "Mockingbird Ln",
            "Pecan Acres Ln",
        ],
        postcode: "99999",
        postcode_is_number: true,
        phone: "(999) 999-9999",
        id_name: "SSN",
        id_value: Some("999-99-9999"),
    },
    Nationality {
        code: "GB",
        country: "United Kingdom",
        states: &["Devon", "Kent", "Cumbria", "Essex", "Lothian"],
        cities: &[
            "Exeter",
            "Canterbury",
            "Carlisle",
            "Colchester",
            "Edinburgh",
        ],
        streets: &[
            "Church Lane",
            "Station Road",
            "Mill Lane",
            "Victoria Street",
        ],
        postcode: "AA9 9AA",
        postcode_is_number: false,
        phone: "0199 999 9999",
        id_name: "NINO",
        id_value: Some("AA 99 99 99 A"),
    },
    Nationality {
        code: "FR",
        country: "France",
        states: &["Gironde", "Rhône", "Bas-Rhin", "Hérault", "Finistère"],
        cities: &["Bordeaux", "Lyon", "Strasbourg", "Montpellier", "Brest"],
        streets: &[
            "Rue de la Paix",
            "Avenue Jean-Jaurès",
            "Rue Victor-Hugo",
            "Place du Marché",
        ],
        postcode: "99999",
        postcode_is_number: true,
        phone: "09-99-99-99-99",
        id_name: "INSEE",
        id_value: Some("9999999999999 99"),
    },
    Nationality {
        code: "DE",
        country: "Germany",
        states: &["Bayern", "Hessen", "Sachsen", "Berlin", "Bremen"],
        cities: &["München", "Kassel", "Leipzig", "Berlin", "Bremen"],
        streets: &["Lindenstraße", "Bahnhofstraße", "Gartenweg", "Schulstraße"],
        postcode: "99999",
        postcode_is_number: true,
        phone: "0999-9999999",
        id_name: "SVNR",
        id_value: Some("99 999999 A 999"),
    },
    Nationality {
        code: "ES",
        country: "Spain",
        states: &["Galicia", "Andalucía", "Cataluña", "Aragón"],
        cities: &["Vigo", "Sevilla", "Girona", "Zaragoza"],
        streets: &["Calle Mayor", "Avenida de América", "Calle del Prado"],
        postcode: "99999",
        postcode_is_number: true,
        phone: "999-999-999",
        id_name: "DNI",
        id_value: Some("99999999-A"),
    },
    Nationality {
        code: "AU",
        country: "Australia",
        states: &["Queensland", "Victoria", "Tasmania", "New South Wales"],
        cities: &["Cairns", "Geelong", "Hobart", "Newcastle"],
        streets: &["Hunter St", "Dogwood Ave", "Smokey Ln"],
        postcode: "9999",
        postcode_is_number: true,
        phone: "09-9999-9999",
        id_name: "TFN",
        id_value: Some("999999999"),
    },
    Nationality {
        code: "CA",
        country: "Canada",
        states: &["Ontario", "Québec", "Nova Scotia", "Alberta"],
        cities: &["Ottawa", "Laval", "Halifax", "Calgary"],
        streets: &["Maple Ave", "King St", "Dundas Rd"],
        postcode: "A9A 9A9",
        postcode_is_number: false,
        phone: "A99-A99-9999",
        id_name: "SIN",
        id_value: Some("999999999"),
    },
    Nationality {
        code: "BR",
        country: "Brazil",
        states: &["Bahia", "Paraná", "Pernambuco", "Goiás"],
        cities: &["Salvador", "Curitiba", "Recife", "Goiânia"],
        streets: &["Rua Dois", "Rua da Paz", "Avenida Brasil"],
        postcode: "99999",
        postcode_is_number: true,
        phone: "(99) 9999-9999",
        id_name: "CPF",
        id_value: Some("999.999.999-99"),
    },
    Nationality {
        code: "NL",
        country: "Netherlands",
        states: &["Utrecht", "Groningen", "Zeeland", "Limburg"],
        cities: &["Amersfoort", "Delfzijl", "Middelburg", "Venlo"],
        streets: &["Kerkstraat", "Molenweg", "Dorpsstraat"],
        postcode: "9999 AA",
        postcode_is_number: false,
        phone: "(099) 9999999",
        id_name: "BSN",
        id_value: Some("99999999"),
    },
    Nationality {
        code: "IE",
        country: "Ireland",
        states: &["Cork", "Galway", "Kerry", "Louth"],
        cities: &["Cork", "Galway", "Tralee", "Dundalk"],
        streets: &["Main Street", "Patrick Street", "Green Lane"],
        postcode: "99999",
        postcode_is_number: true,
        phone: "099-999-9999",
        id_name: "PPS",
        id_value: None,
    },
];

pub const FEMALE_FIRST: &[&str] = &[
    "Jennie", "Aada", "Chloe", "Lucía", "Isabella", "Emma", "Léa", "Mia", "Sofia", "Amelia",
    "Olivia", "Hanna", "Laura", "Eva", "Nora", "Clara", "Ana", "Maja", "Zoe", "Iris",
];

pub const MALE_FIRST: &[&str] = &[
    "Brad", "Lukas", "Noah", "Hugo", "Mateo", "Liam", "Oscar", "Leon", "Jack", "Thomas", "Daniel",
    "Pablo", "Felix", "Samuel", "Arthur", "Louis", "Ivan", "Max", "Ethan", "Jonas",
];

pub const LAST: &[&str] = &[
    "Nichols",
    "Garcia",
    "Müller",
    "Dubois",
    "Smith",
    "Jensen",
    "Silva",
    "Rossi",
    "Novak",
    "Walker",
    "Moreau",
    "Fischer",
    "López",
    "Brown",
    "Wilson",
    "Martin",
    "Bakker",
    "Murphy",
    "Kelly",
    "Santos",
    "Taylor",
    "Schmidt",
    "Fernández",
    "Roux",
    "Visser",
    "Clarke",
    "Costa",
    "Weber",
    "Ryan",
    "Lambert",
];

pub const TITLES_FEMALE: &[&str] = &["Ms", "Mrs", "Miss", "Mademoiselle", "Madame"];
pub const TITLES_MALE: &[&str] = &["Mr", "Monsieur"];

pub const USERNAME_ADJECTIVES: &[&str] = &[
    "yellow", "silver", "happy", "tiny", "angry", "lazy", "brave", "heavy",
];
pub const USERNAME_ANIMALS: &[&str] = &[
    "peacock", "tiger", "koala", "swan", "wolf", "frog", "lion", "goose",
];
pub const PASSWORDS: &[&str] = &[
    "addison", "dragon", "sunshine", "letmein", "monkey", "shadow", "master", "tigger",
];

pub const TIMEZONES: &[(&str, &str)] = &[
    ("-10:00", "Hawaii"),
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"),
    ("+0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"),
    ("+5:30", "Bombay, Calcutta, Madras, New Delhi"),
    ("+9:30", "Adelaide, Darwin"),
];
