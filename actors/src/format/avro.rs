//! The Avro form of a [`RawUser`] (`user.avsc`) and the Confluent wire format around it:
//! magic byte 0, the writer schema's registry id as 4 big-endian bytes, the Avro datum.
//!
//! Values are built and read by hand rather than through serde: the schema's unions
//! (a postcode that is a number or text, a national id that may be null) need explicit
//! branches, and reading by field name is our schema resolution — fields a newer writer
//! added are ignored, `id.value` takes its default (null) when a writer lacks it, and a
//! field this reader needs that a writer lacks makes the record poison. (The subject's
//! BACKWARD rule checks that a new schema reads the records of the latest one before
//! it; it does not stop a new writer from dropping a field an older reader needs —
//! FORWARD would. Writers of this topic must keep the fields of `user.avsc`.)

use crate::model::raw_user::{
    Coordinates, DatedAge, Location, Login, Name, NationalId, Picture, Postcode, RawUser, Street,
    Timezone,
};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use std::borrow::Cow;
use std::sync::OnceLock;

/// The schema tributary writes, registered under the topic's subject by `schema apply`.
pub const USER_SCHEMA: &str = include_str!("user.avsc");

/// The Confluent wire format's first byte.
const MAGIC: u8 = 0;

/// [`USER_SCHEMA`], parsed once for the process (writers and readers borrow it).
///
/// # Panics
/// Never at run time: the schema is compiled in and a unit test parses it.
pub fn user_schema() -> &'static Schema {
    static USER: OnceLock<Schema> = OnceLock::new();
    USER.get_or_init(|| Schema::parse_str(USER_SCHEMA).expect("user.avsc is a valid Avro schema"))
}

/// A writer of `schema`'s datums (its named types resolved once).
///
/// # Errors
/// A schema whose named types do not resolve.
pub fn writer(schema: &Schema) -> Result<GenericDatumWriter<'_>, String> {
    GenericDatumWriter::builder(schema)
        .build()
        .map_err(|e| format!("schema unusable for writing: {e}"))
}

/// A reader of datums written with `schema`.
///
/// # Errors
/// A schema whose named types do not resolve.
pub fn reader(schema: &Schema) -> Result<GenericDatumReader<'_>, String> {
    GenericDatumReader::builder(schema)
        .build()
        .map_err(|e| format!("writer schema unusable: {e}"))
}

/// `datum` framed for the wire: magic byte, schema id, datum.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(5 + datum.len());
    framed.push(MAGIC);
    framed.extend_from_slice(&schema_id.to_be_bytes());
    framed.extend_from_slice(datum);
    framed
}

/// The schema id and the datum of a framed payload.
///
/// # Errors
/// Why the payload is not in the Confluent wire format.
pub fn unframe(payload: &[u8]) -> Result<(u32, &[u8]), String> {
    match payload {
        [MAGIC, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [other, ..] if *other != MAGIC => Err(format!(
            "not in the Confluent wire format: first byte {other:#04x}, expected 0x00"
        )),
        _ => Err(format!(
            "not in the Confluent wire format: {} bytes, shorter than its 5-byte header",
            payload.len()
        )),
    }
}

/// Encodes `user` as a datum of [`USER_SCHEMA`] (`writer` is [`user_schema`]'s).
///
/// # Errors
/// A value the schema cannot hold (staging's validation refuses those first).
pub fn encode(writer: &GenericDatumWriter<'_>, user: &RawUser<'_>) -> Result<Vec<u8>, String> {
    let value = to_value(user)?;
    writer
        .write_value_to_vec(value)
        .map_err(|e| format!("cannot encode the user as Avro: {e}"))
}

/// Decodes a datum that `reader`'s writer schema wrote into a user, validated as a
/// staged record is.
///
/// # Errors
/// Why the datum is not a user: undecodable bytes, a missing or mistyped field (named
/// by its path), or a value validation refuses.
pub fn decode<'v>(
    reader: &GenericDatumReader<'_>,
    datum: &[u8],
    value: &'v mut Value,
) -> Result<RawUser<'v>, String> {
    let mut bytes = datum;
    *value = reader
        .read_value(&mut bytes)
        .map_err(|e| format!("not an Avro datum of its writer schema: {e}"))?;
    if !bytes.is_empty() {
        return Err(format!(
            "{} bytes left after the Avro datum of its writer schema",
            bytes.len()
        ));
    }
    let value: &'v Value = value;
    let user = from_value(value)?;
    user.validate()?;
    Ok(user)
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn dated_age(d: &DatedAge<'_>) -> Value {
    record(vec![
        ("date", text(&d.date)),
        ("age", Value::Long(d.age.into())),
    ])
}

/// `user` as a value of [`USER_SCHEMA`], fields in the schema's order (a newer
/// schema's writer appends its own fields to it).
///
/// # Errors
/// As [`encode`].
pub fn to_value(user: &RawUser<'_>) -> Result<Value, String> {
    let l = &user.location;
    let postcode = match &l.postcode {
        Postcode::Number(n) => Value::Union(
            0,
            Box::new(Value::Long(i64::try_from(*n).map_err(|_| {
                format!("location.postcode: {n} does not fit an Avro long")
            })?)),
        ),
        Postcode::Text(s) => Value::Union(1, Box::new(text(s))),
    };
    let id_value = match &user.id.value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(text(v))),
    };
    Ok(record(vec![
        ("gender", text(&user.gender)),
        (
            "name",
            record(vec![
                ("title", text(&user.name.title)),
                ("first", text(&user.name.first)),
                ("last", text(&user.name.last)),
            ]),
        ),
        (
            "location",
            record(vec![
                (
                    "street",
                    record(vec![
                        ("number", Value::Long(l.street.number.into())),
                        ("name", text(&l.street.name)),
                    ]),
                ),
                ("city", text(&l.city)),
                ("state", text(&l.state)),
                ("country", text(&l.country)),
                ("postcode", postcode),
                (
                    "coordinates",
                    record(vec![
                        ("latitude", text(&l.coordinates.latitude)),
                        ("longitude", text(&l.coordinates.longitude)),
                    ]),
                ),
                (
                    "timezone",
                    record(vec![
                        ("offset", text(&l.timezone.offset)),
                        ("description", text(&l.timezone.description)),
                    ]),
                ),
            ]),
        ),
        ("email", text(&user.email)),
        (
            "login",
            record(vec![
                ("uuid", text(&user.login.uuid)),
                ("username", text(&user.login.username)),
                ("password", text(&user.login.password)),
                ("salt", text(&user.login.salt)),
                ("md5", text(&user.login.md5)),
                ("sha1", text(&user.login.sha1)),
                ("sha256", text(&user.login.sha256)),
            ]),
        ),
        ("dob", dated_age(&user.dob)),
        ("registered", dated_age(&user.registered)),
        ("phone", text(&user.phone)),
        ("cell", text(&user.cell)),
        (
            "id",
            record(vec![("name", text(&user.id.name)), ("value", id_value)]),
        ),
        (
            "picture",
            record(vec![
                ("large", text(&user.picture.large)),
                ("medium", text(&user.picture.medium)),
                ("thumbnail", text(&user.picture.thumbnail)),
            ]),
        ),
        ("nat", text(&user.nat)),
    ]))
}

/// One record of a decoded value, read by field name; errors carry the field's path.
struct Fields<'v> {
    path: String,
    fields: &'v [(String, Value)],
}

impl<'v> Fields<'v> {
    fn of(path: &str, value: &'v Value) -> Result<Self, String> {
        match unwrap_union(value) {
            Value::Record(fields) => Ok(Fields {
                path: path.to_owned(),
                fields,
            }),
            other => Err(format!(
                "{}: expected a record, found {other:?}",
                shown(path)
            )),
        }
    }

    fn key(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn get(&self, name: &str) -> Option<&'v Value> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| unwrap_union(v))
    }

    fn field(&self, name: &str) -> Result<&'v Value, String> {
        self.get(name)
            .ok_or_else(|| format!("{}: missing field", self.key(name)))
    }

    fn record(&self, name: &str) -> Result<Fields<'v>, String> {
        Fields::of(&self.key(name), self.field(name)?)
    }

    fn text(&self, name: &str) -> Result<Cow<'v, str>, String> {
        match self.field(name)? {
            Value::String(s) => Ok(Cow::Borrowed(s.as_str())),
            other => Err(format!(
                "{}: expected a string, found {other:?}",
                self.key(name)
            )),
        }
    }

    /// A nullable string: null or absent (the schema's default) is `None`.
    fn optional_text(&self, name: &str) -> Result<Option<Cow<'v, str>>, String> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.text(name).map(Some),
        }
    }

    fn number(&self, name: &str) -> Result<u32, String> {
        let n = match self.field(name)? {
            Value::Int(n) => i64::from(*n),
            Value::Long(n) => *n,
            other => {
                return Err(format!(
                    "{}: expected a number, found {other:?}",
                    self.key(name)
                ));
            }
        };
        u32::try_from(n).map_err(|_| format!("{}: {n} is out of range", self.key(name)))
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "record" } else { path }
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn from_value(value: &Value) -> Result<RawUser<'_>, String> {
    let user = Fields::of("", value)?;
    let name = user.record("name")?;
    let location = user.record("location")?;
    let street = location.record("street")?;
    let coordinates = location.record("coordinates")?;
    let timezone = location.record("timezone")?;
    let login = user.record("login")?;
    let id = user.record("id")?;
    let picture = user.record("picture")?;
    let dated = |key: &str| -> Result<DatedAge<'_>, String> {
        let d = user.record(key)?;
        Ok(DatedAge {
            date: d.text("date")?,
            age: d.number("age")?,
        })
    };
    let postcode = match location.field("postcode")? {
        Value::Long(n) => Postcode::Number(
            u64::try_from(*n).map_err(|_| format!("location.postcode: {n} is negative"))?,
        ),
        Value::Int(n) => Postcode::Number(
            u64::try_from(*n).map_err(|_| format!("location.postcode: {n} is negative"))?,
        ),
        Value::String(s) => Postcode::Text(Cow::Borrowed(s.as_str())),
        other => {
            return Err(format!(
                "location.postcode: expected a number or a string, found {other:?}"
            ));
        }
    };
    Ok(RawUser {
        gender: user.text("gender")?,
        name: Name {
            title: name.text("title")?,
            first: name.text("first")?,
            last: name.text("last")?,
        },
        location: Location {
            street: Street {
                number: street.number("number")?,
                name: street.text("name")?,
            },
            city: location.text("city")?,
            state: location.text("state")?,
            country: location.text("country")?,
            postcode,
            coordinates: Coordinates {
                latitude: coordinates.text("latitude")?,
                longitude: coordinates.text("longitude")?,
            },
            timezone: Timezone {
                offset: timezone.text("offset")?,
                description: timezone.text("description")?,
            },
        },
        email: user.text("email")?,
        login: Login {
            uuid: login.text("uuid")?,
            username: login.text("username")?,
            password: login.text("password")?,
            salt: login.text("salt")?,
            md5: login.text("md5")?,
            sha1: login.text("sha1")?,
            sha256: login.text("sha256")?,
        },
        dob: dated("dob")?,
        registered: dated("registered")?,
        phone: user.text("phone")?,
        cell: user.text("cell")?,
        id: NationalId {
            name: id.text("name")?,
            value: id.optional_text("value")?,
        },
        picture: Picture {
            large: picture.text("large")?,
            medium: picture.text("medium")?,
            thumbnail: picture.text("thumbnail")?,
        },
        nat: user.text("nat")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::raw_user::tests::SAMPLE;

    #[test]
    fn a_user_survives_the_round_trip() {
        let schema = user_schema();
        let user = RawUser::parse(SAMPLE).unwrap();
        let datum = encode(&writer(schema).unwrap(), &user).unwrap();
        let framed = frame(7, &datum);
        let (id, body) = unframe(&framed).unwrap();
        assert_eq!(id, 7);
        let mut value = Value::Null;
        let back = decode(&reader(schema).unwrap(), body, &mut value).unwrap();
        assert_eq!(back, user);
    }

    #[test]
    fn nulls_and_text_postcodes_survive_too() {
        let schema = user_schema();
        let json = SAMPLE.replacen(r#""postcode": 63104"#, r#""postcode": "T5V 2M6""#, 1);
        let user = RawUser::parse(&json).unwrap();
        assert_eq!(user.id.value, None, "the sample's national id is null");
        assert!(matches!(user.location.postcode, Postcode::Text(_)));
        let datum = encode(&writer(schema).unwrap(), &user).unwrap();
        let mut value = Value::Null;
        assert_eq!(
            decode(&reader(schema).unwrap(), &datum, &mut value).unwrap(),
            user
        );
    }

    #[test]
    fn a_newer_writer_with_an_added_field_still_decodes() {
        let newer = USER_SCHEMA.replacen(
            r#"{"name": "nat", "type": "string"}"#,
            r#"{"name": "nat", "type": "string"}, {"name": "note", "type": ["null", "string"], "default": null}"#,
            1,
        );
        assert_ne!(newer, USER_SCHEMA);
        let newer = Schema::parse_str(&newer).unwrap();
        let user = RawUser::parse(SAMPLE).unwrap();
        let Value::Record(mut fields) = to_value(&user).unwrap() else {
            unreachable!()
        };
        fields.push(("note".into(), Value::Union(1, Box::new(text("hello")))));
        let datum = writer(&newer)
            .unwrap()
            .write_value_to_vec(Value::Record(fields))
            .unwrap();
        let mut value = Value::Null;
        assert_eq!(
            decode(&reader(&newer).unwrap(), &datum, &mut value).unwrap(),
            user
        );
    }

    #[test]
    fn bad_bytes_are_named_not_panicked_on() {
        assert!(
            unframe(b"{\"json\": 1}")
                .unwrap_err()
                .contains("first byte 0x7b")
        );
        assert!(unframe(&[0, 0, 1]).unwrap_err().contains("3 bytes"));
        let schema = user_schema();
        let mut value = Value::Null;
        let error = decode(&reader(schema).unwrap(), &[0x02, 0x41], &mut value).unwrap_err();
        assert!(error.contains("not an Avro datum"), "{error}");
        // A datum of another record type: the field that is missing is named.
        let other = Schema::parse_str(
            r#"{"type": "record", "name": "Other", "fields": [{"name": "gender", "type": "string"}]}"#,
        )
        .unwrap();
        let datum = writer(&other)
            .unwrap()
            .write_value_to_vec(record(vec![("gender", text("female"))]))
            .unwrap();
        let error = decode(&reader(&other).unwrap(), &datum, &mut value).unwrap_err();
        assert_eq!(error, "name: missing field");
    }
}
