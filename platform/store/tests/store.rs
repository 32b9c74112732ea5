//! The store against a real, fresh Postgres database.

use chrono::Utc;
use platform_core::{
    RESULT_SCHEMA_VERSION, Stage, TaskEnvelope, TaskOutcome, TaskResult, WorkflowType,
};
use platform_store::{Applied, NewWorkflow, Store, WorkflowRow};
use serde_json::json;

async fn store() -> anyhow::Result<Store> {
    let db = test_support::fresh_database().await?;
    let s = Store::connect(&db.url, 4).await?;
    s.migrate().await?;
    Ok(s)
}

fn new_wf() -> NewWorkflow {
    NewWorkflow {
        name: "shop".into(),
        kind: WorkflowType::App,
        description: String::new(),
        template: "static-web".into(),
        params: json!({"title": "Shop"}),
        correlation_id: "c1".into(),
    }
}

async fn take_outbox(s: &Store) -> anyhow::Result<Vec<TaskEnvelope>> {
    let mut out = Vec::new();
    s.drain_outbox(100, std::time::Duration::ZERO, |rows| {
        for r in rows {
            out.push(serde_json::from_value(r.envelope).unwrap());
        }
        async { Ok::<_, ()>(()) }
    })
    .await?
    .unwrap();
    Ok(out)
}

/// A store with one new workflow, its first task taken from the outbox.
async fn dispatched() -> anyhow::Result<(Store, WorkflowRow, Vec<TaskEnvelope>)> {
    let s = store().await?;
    let (wf, _) = s.create_workflow(new_wf()).await?;
    let envs = take_outbox(&s).await?;
    Ok((s, wf, envs))
}

/// Asserts that the workflow failed, for a reason containing `reason`.
async fn assert_failed(s: &Store, wf: &WorkflowRow, reason: &str) -> anyhow::Result<()> {
    let d = s.get_workflow(wf.id).await?.unwrap();
    assert_eq!(d.workflow.state, "failed");
    let why = d.workflow.failure_reason.unwrap_or_default();
    assert!(why.contains(reason), "failure reason {why:?}");
    Ok(())
}

fn result(env: &TaskEnvelope, outcome: TaskOutcome) -> TaskResult {
    TaskResult {
        schema_version: RESULT_SCHEMA_VERSION,
        task_id: env.task_id,
        workflow_id: env.workflow_id,
        stage: env.stage,
        attempt: env.attempt,
        agent_id: "a1".into(),
        correlation_id: env.correlation_id.clone(),
        outcome,
        picked_up_at: Utc::now(),
        finished_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_workflow_walks_all_stages_once_and_duplicates_change_nothing() -> anyhow::Result<()> {
    let s = store().await?;
    let (wf, first) = s.create_workflow(new_wf()).await?;
    assert_eq!(wf.state, "scaffolding");
    let mut queued = first.map(|q| q.envelope);
    let mut context = serde_json::Map::new();
    for stage in Stage::ALL {
        let envs = take_outbox(&s).await?;
        assert_eq!(envs.len(), 1, "one dispatch for {stage}");
        assert_eq!(envs[0].stage, stage);
        // The envelope handed back for the fast path is the one committed to the outbox, and
        // carries the workflow's inputs and every earlier stage's output.
        assert_eq!(queued.as_ref(), Some(&envs[0]), "{stage}");
        assert_eq!(
            envs[0].payload,
            json!({"name": "shop", "type": "app", "description": "", "template": "static-web", "params": {"title": "Shop"}})
        );
        assert_eq!(
            envs[0].workflow_context,
            serde_json::Value::Object(context.clone())
        );
        assert_eq!((envs[0].workflow_id, envs[0].attempt), (wf.id, 1));
        assert_eq!(envs[0].correlation_id, "c1");
        let r = result(
            &envs[0],
            TaskOutcome::Succeeded {
                output: json!({"stage": stage.as_str()}),
            },
        );
        match s.apply_result(&r).await? {
            Applied::Advanced { queued: q, .. } => queued = q.map(|q| q.envelope),
            other => panic!("{stage}: {other:?}"),
        }
        context.insert(stage.as_str().into(), json!({"stage": stage.as_str()}));
        assert!(matches!(s.apply_result(&r).await?, Applied::Ignored { .. }));
    }
    assert_eq!(queued, None, "nothing after the last stage");
    assert!(take_outbox(&s).await?.is_empty());
    let d = s.get_workflow(wf.id).await?.unwrap();
    assert_eq!(d.workflow.state, "completed");
    assert_eq!(d.workflow.context["e2e"]["stage"], "e2e");
    let path: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.kind == "transition")
        .map(|e| e.to_state.clone().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "initiated",
            "scaffolding",
            "validating",
            "e2e_testing",
            "integrating",
            "deploying",
            "completed"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn cancel_ignores_late_results_and_refuses_twice() -> anyhow::Result<()> {
    let (s, wf, envs) = dispatched().await?;
    s.cancel(wf.id, "user").await?;
    let late = result(&envs[0], TaskOutcome::Succeeded { output: json!({}) });
    assert!(matches!(
        s.apply_result(&late).await?,
        Applied::Ignored { .. }
    ));
    assert!(s.cancel(wf.id, "again").await.is_err());
    assert_eq!(
        s.get_workflow(wf.id).await?.unwrap().workflow.state,
        "cancelled"
    );
    Ok(())
}

#[tokio::test]
async fn failure_and_dead_letter_fail_the_workflow_with_the_reason() -> anyhow::Result<()> {
    let (s, wf, envs) = dispatched().await?;
    let r = result(
        &envs[0],
        TaskOutcome::DeadLettered {
            reason: "3 deliveries".into(),
        },
    );
    s.apply_result(&r).await?;
    assert_failed(&s, &wf, "dead-lettered: 3 deliveries").await
}

#[tokio::test]
async fn stale_tasks_are_redispatched_then_failed() -> anyhow::Result<()> {
    let (s, wf, _) = dispatched().await?;
    let zero = std::time::Duration::ZERO;
    assert_eq!(s.redispatch_stale(zero, 2).await?, 1);
    let again = take_outbox(&s).await?;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(s.redispatch_stale(zero, 2).await?, 1);
    assert_failed(&s, &wf, "no result after 2").await
}

/// A batch applied in one transaction has the effect of its results applied one by one:
/// several workflows advance, a duplicate in the same batch is ignored, a failure fails its own
/// workflow only; creations committed together each start their first stage; the published
/// outbox rows handed in are deleted by the same commits.
#[tokio::test]
async fn group_commits_have_the_effect_of_one_by_one() -> anyhow::Result<()> {
    let s = store().await?;
    let created = s
        .create_workflows(&[new_wf(), new_wf(), new_wf()], &[])
        .await?;
    assert_eq!(created.len(), 3);
    let mut outbox_ids: Vec<i64> = Vec::new();
    for (wf, q) in &created {
        assert_eq!(wf.state, "scaffolding");
        let q = q.as_ref().expect("first stage queued");
        assert_eq!(q.envelope.stage, Stage::Scaffold);
        outbox_ids.push(q.outbox_id);
    }
    let envs: Vec<TaskEnvelope> = created
        .iter()
        .map(|(_, q)| q.as_ref().unwrap().envelope.clone())
        .collect();
    let ok = |e: &TaskEnvelope| {
        result(
            e,
            TaskOutcome::Succeeded {
                output: json!({"ok": true}),
            },
        )
    };
    let batch = vec![
        ok(&envs[0]),
        ok(&envs[1]),
        ok(&envs[0]), // duplicate, same batch
        result(
            &envs[2],
            TaskOutcome::Failed {
                reason: "lint".into(),
            },
        ),
    ];
    let applied = s.apply_results(&batch, &outbox_ids).await?;
    assert!(matches!(
        &applied[0],
        Applied::Advanced {
            queued: Some(_),
            ..
        }
    ));
    assert!(matches!(
        &applied[1],
        Applied::Advanced {
            queued: Some(_),
            ..
        }
    ));
    assert!(
        matches!(&applied[2], Applied::Ignored { .. }),
        "{:?}",
        applied[2]
    );
    assert!(matches!(
        &applied[3],
        Applied::Advanced { queued: None, .. }
    ));
    for (i, state) in [(0, "validating"), (1, "validating"), (2, "failed")] {
        let d = s.get_workflow(created[i].0.id).await?.unwrap();
        assert_eq!(d.workflow.state, state);
        if state == "validating" {
            assert_eq!(d.workflow.context["scaffold"], json!({"ok": true}));
        }
    }
    assert_failed(&s, &created[2].0, "lint").await?;
    // The three scaffold rows were deleted with the batch; the two validation rows remain.
    let left = take_outbox(&s).await?;
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|e| e.stage == Stage::Validation));
    assert!(
        left.iter()
            .all(|e| e.workflow_context["scaffold"] == json!({"ok": true}))
    );
    Ok(())
}
