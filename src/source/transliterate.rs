//! Names in ASCII for e-mail addresses, as the real API writes them.

/// An ASCII form of a name for the e-mail address, as the API's transliteration does:
/// diacritics dropped (`Barış` → `baris`), Cyrillic and Persian romanised (Persian to
/// its consonants: `فاطمه` → `ftmh`), anything else left out.
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let ascii: &str = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'ď' | 'đ' | 'ð' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
            'ğ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ı' | 'ī' | 'į' => "i",
            'ł' => "l",
            'ñ' | 'ń' | 'ň' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
            'ř' => "r",
            'ß' => "ss",
            'ś' | 'ş' | 'š' => "s",
            'ť' => "t",
            'þ' => "th",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            '’' => "'",
            // Cyrillic (Serbian and Ukrainian letters included).
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' | 'ґ' => "g",
            'д' => "d",
            'ђ' => "dj",
            'е' => "e",
            'є' => "ie",
            'ж' => "zh",
            'з' => "z",
            'и' | 'і' => "i",
            'ї' => "yi",
            'й' | 'ј' => "j",
            'к' => "k",
            'л' => "l",
            'љ' => "lj",
            'м' => "m",
            'н' => "n",
            'њ' => "nj",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'ћ' => "c",
            'у' => "u",
            'ф' => "f",
            'х' => "h",
            'ц' => "c",
            'ч' => "ch",
            'џ' => "dz",
            'ш' => "sh",
            'щ' => "shch",
            'ю' => "yu",
            'я' => "ya",
            // Persian and Arabic letters: consonants only, as the API's library gives.
            'آ' => "a",
            'ب' => "b",
            'پ' => "p",
            'ت' | 'ط' => "t",
            'ث' | 'س' | 'ص' => "s",
            'ج' => "j",
            'چ' => "ch",
            'ح' | 'ه' | 'ة' => "h",
            'خ' => "kh",
            'د' => "d",
            'ذ' | 'ز' | 'ض' | 'ظ' => "z",
            'ر' => "r",
            'ژ' => "zh",
            'ش' => "sh",
            'غ' => "gh",
            'ف' => "f",
            'ق' => "q",
            'ک' | 'ك' => "k",
            'گ' => "g",
            'ل' => "l",
            'م' => "m",
            'ن' => "n",
            'و' => "v",
            'ی' | 'ي' | 'ى' => "y",
            // Alef, ain, hamza, combining marks (the dot of a lower-cased İ) …: nothing.
            _ => "",
        };
        out.push_str(ascii);
    }
    out
}
