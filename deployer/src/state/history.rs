//! Reading the audit history: the previous successful release, and a release named by id, git
//! sha or task-definition revision (what `rollback --to` accepts).

use std::fmt::Write as _;

use super::audit::ReleaseRecord;
use crate::aws::ecs::short_td;

/// The newest successful release that is not `skip` (the one being rolled back from).
pub fn previous_success<'a>(
    records: &'a [ReleaseRecord],
    skip_release: Option<&str>,
) -> Option<&'a ReleaseRecord> {
    records
        .iter()
        .filter(|r| r.succeeded())
        .find(|r| Some(r.release_id.as_str()) != skip_release)
}

/// Finds a release by id, git sha (or prefix of at least 7), or task-definition revision
/// (`family:N` or a full ARN) among successful ones.
pub fn find_target<'a>(records: &'a [ReleaseRecord], to: &str) -> Option<&'a ReleaseRecord> {
    records.iter().filter(|r| r.succeeded()).find(|r| {
        r.release_id == to
            || (to.len() >= 7 && r.git_sha.starts_with(to))
            || r.services
                .iter()
                .any(|s| s.task_definition == to || short_td(&s.task_definition) == to)
    })
}

/// Plain-text table of releases (one line per release, services indented below): what
/// `history` prints and `status` shows of the recent ones.
pub fn render_table(env: &str, records: &[ReleaseRecord]) -> String {
    let mut out = String::new();
    if records.is_empty() {
        let _ = writeln!(out, "no releases recorded for environment '{env}'");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<30} {:<9} {:<12} {:<18} {:<25} reason",
        "RELEASE", "KIND", "GIT SHA", "OUTCOME", "STARTED"
    );
    for r in records {
        let sha: String = r.git_sha.chars().take(12).collect();
        let _ = writeln!(
            out,
            "{:<30} {:<9} {:<12} {:<18} {:<25} {}",
            r.release_id,
            r.kind.as_str(),
            sha,
            r.outcome.as_str(),
            r.started_at,
            r.reason
        );
        for s in &r.services {
            let _ = writeln!(
                out,
                "    {:<20} {} (was {}) {}",
                s.service,
                short_td(&s.task_definition),
                short_td(&s.previous_task_definition),
                s.status
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::audit::{RecordOutcome, ReleaseKind, ServiceRecord};
    use crate::state::outcome::Outcome;

    fn rec(id: &str, sha: &str, outcome: Outcome) -> ReleaseRecord {
        ReleaseRecord {
            env: "staging".into(),
            release_id: id.into(),
            kind: ReleaseKind::Release,
            git_sha: sha.into(),
            outcome: RecordOutcome::Ended(outcome),
            services: vec![ServiceRecord {
                service: "orchestrator".into(),
                task_definition: format!(
                    "arn:aws:ecs:us-east-1:1:task-definition/orc:{}",
                    &id[1..]
                ),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn finds_previous_success_and_named_targets() {
        let recs = vec![
            rec("r3", "cccccccccc", Outcome::RolledBackSmoke),
            rec("r2", "bbbbbbbbbb", Outcome::Succeeded),
            rec("r1", "aaaaaaaaaa", Outcome::Succeeded),
        ];
        assert_eq!(previous_success(&recs, None).unwrap().release_id, "r2");
        assert_eq!(
            previous_success(&recs, Some("r2")).unwrap().release_id,
            "r1"
        );
        assert_eq!(find_target(&recs, "aaaaaaa").unwrap().release_id, "r1");
        assert_eq!(find_target(&recs, "orc:2").unwrap().release_id, "r2");
        assert!(render_table("staging", &recs).contains("rolled_back_smoke"));
        assert!(
            find_target(&recs, "cccccccccc").is_none(),
            "failed releases are not targets"
        );
        assert!(render_table("staging", &recs).contains("rolled_back_smoke"));
    }
}
