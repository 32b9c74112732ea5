//! Metric analysis: what a smoke check cannot see. Each `[[environments.X.analysis]]` entry is a
//! CloudWatch metric of the new revision's target group, judged per period against an absolute
//! limit or against the old target group's value (the baseline), with a minimum request count
//! below which a period is inconclusive. A number of consecutive failing periods fails it.

use std::time::{Duration, SystemTime};

use super::Ctx;
use crate::aws::cloudwatch::{self, Query};
use crate::config::{Analysis, Inconclusive, Service};

/// The two target groups of a deployment: the new revision's (green) and the old one's (blue),
/// as CloudWatch's `TargetGroup` dimension values (`targetgroup/<name>/<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetGroups {
    pub green: String,
    pub blue: String,
}

impl TargetGroups {
    /// From the target group ARNs.
    pub fn from_arns(green: &str, blue: &str) -> Self {
        Self {
            green: dimension(green),
            blue: dimension(blue),
        }
    }
}

/// `arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>` →
/// `targetgroup/<name>/<id>`, the value of the `TargetGroup` dimension of ELB metrics.
fn dimension(arn: &str) -> String {
    arn.rsplit_once(':')
        .map(|(_, tail)| tail)
        .unwrap_or(arn)
        .to_owned()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Pass(String),
    Fail(String),
    Inconclusive(String),
}

/// One period of one analysis.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Interval {
    pub start: i64,
    /// The new revision's value (the metric, or metric / per).
    pub green: Option<f64>,
    /// The baseline's.
    pub blue: Option<f64>,
    /// The new target group's requests in the period (when `min_requests` is set).
    pub requests: Option<f64>,
}

/// The analyses that apply to `svc`: those naming it, or all when none names services, for a
/// load-balanced service whose traffic ECS shifts.
pub(crate) fn for_service<'a>(analyses: &'a [Analysis], svc: &Service) -> Vec<&'a Analysis> {
    if svc.load_balancer.is_none() || !svc.strategy.shifts_traffic() {
        return Vec::new();
    }
    analyses
        .iter()
        .filter(|a| {
            a.services
                .as_ref()
                .is_none_or(|names| names.contains(&svc.name))
        })
        .collect()
}

/// All of `analyses` over the periods from `since` to now: the first failing one fails; any
/// inconclusive one (and no failure) makes the whole inconclusive.
pub(crate) async fn evaluate(
    ctx: &Ctx,
    analyses: &[&Analysis],
    tgs: &TargetGroups,
    since: SystemTime,
) -> Verdict {
    let mut passed = Vec::new();
    let mut inconclusive = Vec::new();
    for a in analyses {
        let verdict = match intervals(ctx, a, tgs, since).await {
            Ok(iv) => judge(a, &iv),
            Err(e) => Verdict::Inconclusive(format!("`{}`: {e:#}", a.name)),
        };
        match verdict {
            Verdict::Fail(f) => return Verdict::Fail(f),
            Verdict::Inconclusive(i) => inconclusive.push(i),
            Verdict::Pass(p) => passed.push(p),
        }
    }
    if inconclusive.is_empty() {
        Verdict::Pass(passed.join("; "))
    } else {
        Verdict::Inconclusive(inconclusive.join("; "))
    }
}

/// What an inconclusive analysis means at a gate, after waiting (for `wait`) ran out.
pub(crate) fn settle(analyses: &[&Analysis], verdict: Verdict, waited: bool) -> Verdict {
    let Verdict::Inconclusive(why) = verdict else {
        return verdict;
    };
    // The strictest rule among the analyses decides.
    let rules: Vec<Inconclusive> = analyses.iter().map(|a| a.inconclusive).collect();
    if rules.contains(&Inconclusive::Fail) || (waited && rules.contains(&Inconclusive::Wait)) {
        Verdict::Fail(format!(
            "analysis inconclusive{}: {why}",
            if waited {
                " until the pause was about to expire"
            } else {
                ""
            }
        ))
    } else if rules.contains(&Inconclusive::Wait) {
        Verdict::Inconclusive(why)
    } else {
        Verdict::Pass(format!("inconclusive, passed by rule: {why}"))
    }
}

async fn intervals(
    ctx: &Ctx,
    a: &Analysis,
    tgs: &TargetGroups,
    since: SystemTime,
) -> anyhow::Result<Vec<Interval>> {
    let dims = |tg: &str| {
        let mut d: Vec<(String, String)> = a
            .dimensions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        d.push(("TargetGroup".into(), tg.to_owned()));
        d
    };
    let q = |id: &str, metric: &str, stat: &str, tg: &str| Query {
        id: id.into(),
        namespace: a.namespace.clone(),
        metric: metric.into(),
        stat: stat.into(),
        dimensions: dims(tg),
    };
    let mut queries = vec![
        q("gm", &a.metric, &a.stat, &tgs.green),
        q("bm", &a.metric, &a.stat, &tgs.blue),
    ];
    if let Some(per) = &a.per {
        queries.push(q("gp", per, "Sum", &tgs.green));
        queries.push(q("bp", per, "Sum", &tgs.blue));
    }
    if a.min_requests > 0.0 {
        queries.push(q("gr", "RequestCount", "Sum", &tgs.green));
    }
    let series = cloudwatch::values(
        &ctx.cloudwatch,
        &queries,
        since,
        SystemTime::now(),
        a.period,
    )
    .await?;
    let get = |id: &str, t: i64| series.get(id).and_then(|s| s.get(&t)).copied();
    let mut starts: Vec<i64> = series.values().flat_map(|s| s.keys().copied()).collect();
    starts.sort_unstable();
    starts.dedup();
    Ok(starts
        .into_iter()
        .map(|t| {
            let value = |m: &str, p: &str| match (get(m, t), a.per.is_some()) {
                (Some(v), false) => Some(v),
                (Some(v), true) => get(p, t).filter(|d| *d > 0.0).map(|d| v / d),
                // No datapoint of a count in a period with requests: zero of them.
                (None, true) => get(p, t).filter(|d| *d > 0.0).map(|_| 0.0),
                (None, false) => None,
            };
            Interval {
                start: t,
                green: value("gm", "gp"),
                blue: value("bm", "bp"),
                requests: get("gr", t),
            }
        })
        .collect())
}

/// The verdict of one analysis over its periods, oldest first.
pub(crate) fn judge(a: &Analysis, intervals: &[Interval]) -> Verdict {
    let show = |v: f64| {
        if a.per.is_some() {
            format!("{:.1} %", v * 100.0)
        } else {
            format!("{v:.3}")
        }
    };
    let mut run = 0u32;
    let mut conclusive = 0u32;
    let mut last_pass = None;
    let mut why_inconclusive = format!("no datapoints of {} yet", a.metric);
    for iv in intervals {
        if a.min_requests > 0.0 && iv.requests.unwrap_or(0.0) < a.min_requests {
            why_inconclusive = format!(
                "{} requests to the new revision in a period, fewer than min_requests = {}",
                iv.requests.unwrap_or(0.0),
                a.min_requests
            );
            continue;
        }
        let Some(green) = iv.green else {
            continue;
        };
        let relative = a
            .max_relative
            .zip(iv.blue.filter(|b| *b > 0.0))
            .map(|(k, b)| (k, b, k * b));
        let over_abs = a.max.filter(|m| green > *m);
        let over_rel = relative.filter(|(_, _, limit)| green > *limit);
        if a.max.is_none() && relative.is_none() {
            why_inconclusive =
                "no baseline (the old target group has no value) and no absolute `max`".into();
            continue;
        }
        conclusive += 1;
        if over_abs.is_none() && over_rel.is_none() {
            run = 0;
            last_pass = Some(green);
            continue;
        }
        run += 1;
        if run >= a.failing_intervals {
            let baseline = iv
                .blue
                .map(|b| format!(" vs blue {}", show(b)))
                .unwrap_or_default();
            let limit = match (over_rel, over_abs) {
                (Some((k, _, limit)), _) => format!("limit {k} x baseline = {}", show(limit)),
                (None, Some(m)) => format!("limit {}", show(m)),
                (None, None) => unreachable!("an interval over no limit does not fail"),
            };
            return Verdict::Fail(format!(
                "analysis `{}`: green {} {}{baseline}, {limit} ({run} consecutive failing period(s) of {})",
                a.name,
                show(green),
                a.metric,
                humantime::format_duration(a.period)
            ));
        }
    }
    match last_pass {
        Some(g) if conclusive > 0 => Verdict::Pass(format!(
            "analysis `{}`: green {} {} within limits",
            a.name,
            show(g),
            a.metric
        )),
        _ if conclusive > 0 => Verdict::Inconclusive(format!(
            "analysis `{}`: {run} failing period(s), fewer than failing_intervals = {}",
            a.name, a.failing_intervals
        )),
        _ => Verdict::Inconclusive(format!("analysis `{}`: {why_inconclusive}", a.name)),
    }
}

/// How often the analysis is evaluated while production traffic is on the new revision (a
/// GetMetricData call each time; CloudWatch is not ECS's budget, but it is not free either).
pub(crate) const EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(extra: &str) -> Analysis {
        toml::from_str(&format!(
            "name = \"5xx\"\nmetric = \"HTTPCode_Target_5XX_Count\"\nper = \"RequestCount\"\n{extra}"
        ))
        .unwrap()
    }

    fn iv(green: f64, blue: f64, requests: f64) -> Interval {
        Interval {
            start: 0,
            green: Some(green),
            blue: Some(blue),
            requests: Some(requests),
        }
    }

    #[test]
    fn green_over_twice_the_baseline_fails_with_the_numbers() {
        let a = analysis("max_relative = 2.0");
        let v = judge(&a, &[iv(0.041, 0.003, 1000.0)]);
        let Verdict::Fail(why) = v else {
            panic!("{v:?}")
        };
        assert!(why.contains("green 4.1 %"), "{why}");
        assert!(why.contains("vs blue 0.3 %"), "{why}");
        assert!(why.contains("limit 2 x baseline = 0.6 %"), "{why}");
        assert!(matches!(
            judge(&a, &[iv(0.004, 0.003, 1000.0)]),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn consecutive_failing_periods_and_the_minimum_request_count() {
        let a = analysis("max = 0.02\nfailing_intervals = 2\nmin_requests = 100");
        // One bad period between good ones does not fail.
        let v = judge(
            &a,
            &[
                iv(0.05, 0.0, 500.0),
                iv(0.0, 0.0, 500.0),
                iv(0.05, 0.0, 500.0),
            ],
        );
        assert!(matches!(v, Verdict::Pass(_)), "{v:?}");
        let v = judge(&a, &[iv(0.05, 0.0, 500.0), iv(0.06, 0.0, 500.0)]);
        assert!(matches!(v, Verdict::Fail(_)), "{v:?}");
        // Too few requests: inconclusive, whatever the rate.
        let v = judge(&a, &[iv(0.5, 0.0, 10.0)]);
        let Verdict::Inconclusive(why) = v else {
            panic!("{v:?}")
        };
        assert!(why.contains("fewer than min_requests = 100"), "{why}");
        assert!(matches!(judge(&a, &[]), Verdict::Inconclusive(_)));
    }

    #[test]
    fn the_inconclusive_rule_decides_at_a_gate() {
        let i = || Verdict::Inconclusive("few requests".into());
        let wait = analysis("max = 0.1");
        let pass = analysis("max = 0.1\ninconclusive = \"pass\"");
        let fail = analysis("max = 0.1\ninconclusive = \"fail\"");
        assert!(matches!(settle(&[&pass], i(), false), Verdict::Pass(_)));
        assert!(matches!(settle(&[&fail], i(), false), Verdict::Fail(_)));
        assert!(matches!(
            settle(&[&wait], i(), false),
            Verdict::Inconclusive(_)
        ));
        assert!(matches!(settle(&[&wait], i(), true), Verdict::Fail(_)));
    }

    #[test]
    fn target_group_dimension_is_the_arn_tail() {
        let t = TargetGroups::from_arns(
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/green/abc",
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/blue/def",
        );
        assert_eq!(t.green, "targetgroup/green/abc");
        assert_eq!(t.blue, "targetgroup/blue/def");
    }
}
