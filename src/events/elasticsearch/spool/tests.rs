use super::*;

fn doc(n: u64) -> BulkDoc {
    let id = format!("{n:032x}");
    BulkDoc {
        // Same length for every n, so the cap test can count in documents.
        source: format!("{{\"tracer_id\":\"{id}\",\"n\":\"{n:04}\"}}"),
        id,
    }
}

fn docs(range: std::ops::Range<u64>) -> Vec<BulkDoc> {
    range.map(doc).collect()
}

/// Peeks and commits batches of `n` until empty; returns the ids in the order read.
fn drain(spool: &mut Spool, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let peeked = spool.peek(n).unwrap();
        if peeked.lines == 0 {
            return ids;
        }
        ids.extend(peeked.docs.iter().map(|d| d.id.clone()));
        spool.commit(&peeked).unwrap();
    }
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    docs(range).into_iter().map(|d| d.id).collect()
}

#[test]
fn documents_come_back_in_order_and_front_pushes_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert!(spool.is_empty());
    spool.append(&docs(10..20)).unwrap();
    spool.push_front(&docs(5..10)).unwrap();
    spool.append(&docs(20..25)).unwrap();
    assert_eq!(spool.documents(), 20);
    let first = spool.peek(3).unwrap();
    assert_eq!(first.docs, docs(5..8));
    // Not committed: the same batch again.
    assert_eq!(spool.peek(3).unwrap().docs, docs(5..8));
    spool.commit(&first).unwrap();
    // The 429 items of a batch go back in front of what is left.
    spool.push_front(&docs(6..7)).unwrap();
    let mut expected = ids(6..7);
    expected.extend(ids(8..25));
    assert_eq!(drain(&mut spool, 4), expected);
    assert!(spool.is_empty());
    assert_eq!(spool.bytes(), 0);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
        .collect();
    assert!(files.is_empty(), "delivered segments are deleted");
}

#[test]
fn the_cap_refuses_new_documents_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let size = doc(0).source.len() as u64 + 1;
    let mut spool = Spool::open(dir.path(), size * 10).unwrap();
    let outcome = spool.append(&docs(0..15)).unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            written: 10,
            dropped: 5
        }
    );
    assert_eq!(spool.bytes(), size * 10);
    // Delivering some makes room again.
    let peeked = spool.peek(4).unwrap();
    spool.commit(&peeked).unwrap();
    assert_eq!(spool.append(&docs(15..20)).unwrap().written, 4);
    let mut expected = ids(4..10);
    expected.extend(ids(15..19));
    assert_eq!(drain(&mut spool, 100), expected);
}

#[test]
fn a_reopened_spool_resumes_after_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&docs(0..10)).unwrap();
        let peeked = spool.peek(3).unwrap();
        spool.commit(&peeked).unwrap();
        spool.push_front(&docs(100..102)).unwrap();
        // Peeked but not committed when the agent stops: sent again after the restart.
        let _ = spool.peek(5).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(SpoolError::InUse { .. })
        ));
        spool.sync().unwrap();
    }
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.documents(), 9);
    let mut expected = ids(100..102);
    expected.extend(ids(3..10));
    assert_eq!(drain(&mut spool, 2), expected);
}

#[test]
fn a_torn_last_line_is_cut_and_garbage_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&docs(0..3)).unwrap();
        spool.sync().unwrap();
    }
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .unwrap();
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(b"not json\n\xff\xfe\n{\"tracer_id\":\"torn")
        .unwrap();
    drop(file);
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(spool.recovered_corrupt, 1, "the torn line");
    assert_eq!(spool.documents(), 5, "lines, garbage included");
    let peeked = spool.peek(10).unwrap();
    assert_eq!(peeked.docs, docs(0..3));
    assert_eq!(peeked.corrupt, 2);
    spool.commit(&peeked).unwrap();
    assert!(spool.is_empty());
    // Appending after recovery starts on a clean line.
    spool.append(&docs(3..4)).unwrap();
    assert_eq!(drain(&mut spool, 10), ids(3..4));
}

#[test]
fn segments_rotate_and_are_read_across() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 64 << 20).unwrap();
    let big = BulkDoc {
        id: "big".into(),
        source: format!(
            "{{\"tracer_id\":\"big\",\"pad\":\"{}\"}}",
            "x".repeat(1 << 20)
        ),
    };
    let batch: Vec<BulkDoc> = std::iter::repeat_n(big, 10).collect();
    spool.append(&batch).unwrap();
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
        .count();
    assert!(segments >= 2, "{segments} segments");
    assert_eq!(drain(&mut spool, 3).len(), 10);
}
