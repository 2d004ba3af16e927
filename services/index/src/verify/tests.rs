//! Unit tests of the comparison (the digests themselves are tested against a real
//! PostgreSQL in `tests/tests/it/replay.rs`).

use chrono::TimeZone;

use super::*;
use crate::RecordedStream;

fn table(name: &str, rows: i64, digest: &str) -> TableDigest {
    TableDigest {
        table: name.into(),
        columns: vec!["id".into(), "url".into()],
        rows,
        id_column: Some("id".into()),
        latest: Some(format!("({rows},x)")),
        id_range: Some((1, rows)),
        digest: digest.into(),
    }
}

fn projection(tables: Vec<TableDigest>) -> ProjectionDigest {
    ProjectionDigest {
        checkpoint: 42,
        stream: Some(RecordedStream {
            stream: "IMGCRAWL".into(),
            id: Some("4f1e".into()),
            created: Some(chrono::Utc.timestamp_opt(1_767_225_600, 0).unwrap()),
        }),
        tables,
    }
}

#[test]
fn identical_digests_have_no_differences() {
    let a = projection(vec![table("images", 3, "d1"), table("pages", 5, "d2")]);
    let c = compared(a.clone(), a, Vec::new()).unwrap();
    assert!(c.identical(), "{:?}", c.differences);
}

#[test]
fn every_check_names_its_table_and_both_values() {
    let a = projection(vec![table("images", 3, "d1"), table("pages", 5, "d2")]);
    let mut b = projection(vec![table("images", 4, "d1"), table("jobs", 1, "d3")]);
    b.stream.as_mut().unwrap().stream = "OTHER".into();
    let d = compare(&a, &b);
    let find = |t: &str, check: &str| d.iter().find(|x| x.table == t && x.check == check);
    let rows = find("images", "rows").expect("rows differ");
    assert_eq!((rows.left.as_str(), rows.right.as_str()), ("3", "4"));
    assert_eq!(find("images", "id range").unwrap().right, "1..4");
    assert!(find("images", "latest record").is_some());
    assert!(find("images", "digest").is_none(), "same digest: {d:?}");
    assert_eq!(find("pages", "table").unwrap().right, "missing");
    assert_eq!(find("jobs", "table").unwrap().left, "missing");
    assert!(find("projection_meta", "stream")
        .unwrap()
        .right
        .starts_with("OTHER"));
}

#[test]
fn different_checkpoints_are_refused() {
    let a = projection(vec![]);
    let mut b = a.clone();
    b.checkpoint = 41;
    let e = compared(a, b, Vec::new()).unwrap_err();
    assert!(matches!(
        e,
        IndexError::CheckpointsDiffer {
            left: 42,
            right: 41
        }
    ));
    assert!(e.to_string().contains("different checkpoints"), "{e}");
}

#[test]
fn long_values_are_shortened_but_compared_in_full() {
    let long = "x".repeat(300);
    let mut a = projection(vec![table("images", 3, "d")]);
    let mut b = a.clone();
    a.tables[0].latest = Some(format!("{long}a"));
    b.tables[0].latest = Some(format!("{long}b"));
    let d = compare(&a, &b);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].left.chars().count(), 203);
}

#[test]
fn common_schema_keeps_what_both_have_and_notes_the_rest() {
    let left: Schema = [
        (
            "images".to_string(),
            vec!["id".to_string(), "url".to_string()],
        ),
        ("old".to_string(), vec!["a".to_string()]),
    ]
    .into();
    let right: Schema = [
        (
            "images".to_string(),
            vec![
                "id".to_string(),
                "megapixels".to_string(),
                "url".to_string(),
            ],
        ),
        ("new".to_string(), vec!["b".to_string()]),
    ]
    .into();
    let (common, notes) = common_schema(&left, &right);
    assert_eq!(common.len(), 1);
    assert_eq!(common["images"], vec!["id".to_string(), "url".to_string()]);
    assert!(
        notes.contains(&"column images.megapixels only on the right".to_string()),
        "{notes:?}"
    );
    assert!(notes.contains(&"table old only on the left".to_string()));
    assert!(notes.contains(&"table new only on the right".to_string()));
}
