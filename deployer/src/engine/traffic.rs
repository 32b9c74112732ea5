//! What the load balancer says about a service: the test endpoint its test listener rule routes
//! (so `urls.test` need not be hand-set), and whether its production listener rule forwards to
//! exactly its two target groups, one at weight 100 and the other at 0, before a release starts
//! (ECS does not check this: aws/containers-roadmap#2853).

use std::net::{IpAddr, SocketAddr};

use aws_sdk_ecs::types::Service as EcsService;
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, RuleCondition};

use super::Ctx;
use super::smoke::SmokeCheck;
use crate::aws::elb::{self, Route, short_target_group};
use crate::config;

/// The URL, Host header and other request parts that reach a service's test listener rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEndpoint {
    /// The listener rule (or NLB listener) it was read from.
    pub rule: String,
    /// `scheme://dns-name[:port]`: the base URL of the smoke checks.
    pub url: String,
    /// The load balancer's DNS name and the listener port (what `urls.test_resolve` overrides).
    pub dns_name: String,
    pub port: u16,
    /// The rule's host-header condition: the Host header the checks send.
    pub host: Option<String>,
    /// The rule's http-header condition: a header the checks send.
    pub headers: Vec<(String, String)>,
    /// The rule's path-pattern condition: every check's path must match one.
    pub paths: Vec<String>,
}

impl std::fmt::Display for TestEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url)?;
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("Host: {h}"));
        }
        for (k, v) in &self.headers {
            parts.push(format!("{k}: {v}"));
        }
        if !self.paths.is_empty() {
            parts.push(format!("paths {}", self.paths.join(" | ")));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join("; "))?;
        }
        write!(f, " from listener rule {}", self.rule)
    }
}

/// A literal value of a condition (the first without `*` or `?` wildcards).
fn literal(values: &[String]) -> Option<&String> {
    values.iter().find(|v| !v.contains(['*', '?']))
}

/// The endpoint a rule routes: the listener's protocol (HTTP/HTTPS; an NLB's TCP/TLS as
/// HTTP/HTTPS), the load balancer's DNS name, the listener port, and the host-header,
/// http-header and path-pattern conditions. `Err` says why it cannot be told.
pub fn endpoint_of(route: &Route) -> Result<TestEndpoint, String> {
    let scheme = match &route.protocol {
        Some(ProtocolEnum::Http | ProtocolEnum::Tcp) => "http",
        Some(ProtocolEnum::Https | ProtocolEnum::Tls) => "https",
        Some(other) => {
            return Err(format!(
                "its listener's protocol is {}, which carries no HTTP smoke check",
                other.as_str()
            ));
        }
        None => return Err("its listener has no protocol".into()),
    };
    let port = route
        .port
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("its listener has no port")?;
    let default_port = if scheme == "http" { 80 } else { 443 };
    let url = if port == default_port {
        format!("{scheme}://{}", route.dns_name)
    } else {
        format!("{scheme}://{}:{port}", route.dns_name)
    };
    let mut e = TestEndpoint {
        rule: route.arn.clone(),
        url,
        dns_name: route.dns_name.clone(),
        port,
        host: None,
        headers: Vec::new(),
        paths: Vec::new(),
    };
    for c in &route.conditions {
        apply_condition(&mut e, c)?;
    }
    Ok(e)
}

fn apply_condition(e: &mut TestEndpoint, c: &RuleCondition) -> Result<(), String> {
    let field = c.field().unwrap_or_default();
    if !c.regex_values().is_empty() {
        return Err(format!(
            "its {field} condition uses regular expressions, which the deployer does not turn into a request"
        ));
    }
    match field {
        "host-header" => {
            let values = c
                .host_header_config()
                .map(|h| h.values().to_vec())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| c.values().to_vec());
            let host = literal(&values).ok_or_else(|| {
                format!(
                    "its host-header condition has only wildcard values ({}), so no Host header can be chosen",
                    values.join(", ")
                )
            })?;
            e.host = Some(host.clone());
        }
        "path-pattern" => {
            e.paths = c
                .path_pattern_config()
                .map(|p| p.values().to_vec())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| c.values().to_vec());
        }
        "http-header" => {
            let h = c.http_header_config();
            let name = h.and_then(|h| h.http_header_name()).unwrap_or_default();
            let values = h.map(|h| h.values()).unwrap_or_default();
            let value = literal(values).ok_or_else(|| {
                format!("its http-header condition on {name} has only wildcard values")
            })?;
            e.headers.push((name.to_owned(), value.clone()));
        }
        other => {
            return Err(format!(
                "it also matches on {other}, which the deployer does not reproduce in a smoke check"
            ));
        }
    }
    Ok(())
}

/// ELBv2 path-pattern matching: `*` any run of characters, `?` exactly one; case-sensitive; the
/// query string is not part of the path.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The smoke checks (by name and path) whose path the rule's path patterns do not match: those
/// requests would not reach the rule (the listener's default action would answer them).
pub fn unmatched_paths(e: &TestEndpoint, checks: &[(String, String)]) -> Vec<String> {
    if e.paths.is_empty() {
        return Vec::new();
    }
    checks
        .iter()
        .filter(|(_, path)| !e.paths.iter().any(|p| path_matches(p, path)))
        .map(|(name, path)| format!("'{name}' ({path})"))
        .collect()
}

/// The service's listener rule: deployer.toml's, else the live service's advancedConfiguration.
fn rule_of(svc: &config::Service, live: Option<&EcsService>, production: bool) -> Option<String> {
    let lb = svc.load_balancer.as_ref()?;
    let configured = if production {
        lb.production_listener_rule.clone()
    } else {
        lb.test_listener_rule.clone()
    };
    configured.or_else(|| {
        let l = attached(lb, live?)?;
        let adv = l.advanced_configuration()?;
        if production {
            adv.production_listener_rule().map(str::to_owned)
        } else {
            adv.test_listener_rule().map(str::to_owned)
        }
    })
}

/// The service's load balancer entry for the configured target-group pair.
fn attached<'a>(
    lb: &config::LoadBalancer,
    live: &'a EcsService,
) -> Option<&'a aws_sdk_ecs::types::LoadBalancer> {
    live.load_balancers().iter().find(|l| {
        l.target_group_arn().is_some_and(|tg| {
            tg == lb.target_group_arn || lb.alternate_target_group_arn.as_deref() == Some(tg)
        })
    })
}

/// The test endpoint of `svc` found from its test listener rule.
pub async fn discover_test_endpoint(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    svc: &config::Service,
    live: Option<&EcsService>,
) -> Result<TestEndpoint, String> {
    let Some(rule) = rule_of(svc, live, false) else {
        return Err(format!(
            "service {} has no test listener rule (load_balancer.test_listener_rule in deployer.toml, or the service's advancedConfiguration.testListenerRule)",
            svc.name
        ));
    };
    let route = elb::route(elb, &rule)
        .await
        .map_err(|e| format!("reading test listener rule {rule}: {e:#}"))?;
    endpoint_of(&route).map_err(|why| format!("test listener rule {rule}: {why}"))
}

/// A base URL, the client to call it with and the checks to run: what a gate at test traffic
/// uses when `urls.test` is not set.
pub(crate) struct Resolved {
    pub url: String,
    pub client: reqwest::Client,
    pub checks: Vec<SmokeCheck>,
}

/// The checks' target at test traffic: `urls.test` when set; otherwise the endpoint the
/// service's test listener rule routes (its Host header and http-header condition added to every
/// check), called at the load balancer's DNS name, or at `urls.test_resolve` instead when set
/// (an emulator's DNS names do not resolve; URL, port and Host stay as found).
pub(crate) async fn test_target(
    ctx: &Ctx,
    svc: &config::Service,
    configured: Option<String>,
    checks: Vec<SmokeCheck>,
) -> Result<Option<Resolved>, String> {
    if let Some(url) = configured {
        return Ok(Some(Resolved {
            url,
            client: ctx.http.clone(),
            checks,
        }));
    }
    if svc.load_balancer.is_none() {
        return Ok(None);
    }
    let fail = |why: String| {
        format!(
            "urls.test is not set for environment {} and the test endpoint could not be found: {why}; \
             set urls.test, or fix the rule",
            ctx.env_name
        )
    };
    let live =
        crate::aws::ecs::live_services(&ctx.ecs, &ctx.env.cluster, std::slice::from_ref(&svc.name))
            .await
            .ok();
    let e = discover_test_endpoint(&ctx.elb, svc, live.as_ref().and_then(|l| l.get(&svc.name)))
        .await
        .map_err(fail)?;
    let paths: Vec<(String, String)> = checks
        .iter()
        .map(|c| (c.name.clone(), c.path.clone()))
        .collect();
    let off = unmatched_paths(&e, &paths);
    if !off.is_empty() {
        return Err(format!(
            "smoke check(s) {} would not reach test listener rule {}: its path patterns are {}; \
             change the checks' paths, or set urls.test",
            off.join(", "),
            e.rule,
            e.paths.join(", ")
        ));
    }
    let mut builder =
        reqwest::Client::builder().user_agent(concat!("deployer/", env!("CARGO_PKG_VERSION")));
    let mut via = String::new();
    if let Some(addr) = &ctx.env.urls.test_resolve {
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!(
                "urls.test_resolve of environment {} is {addr:?}, not an IP address",
                ctx.env_name
            )
        })?;
        builder = builder.resolve(&e.dns_name, SocketAddr::new(ip, e.port));
        via = format!(", {} resolved to {ip} (urls.test_resolve)", e.dns_name);
    }
    let client = builder
        .build()
        .map_err(|err| format!("an HTTP client for {}: {err}", e.url))?;
    ctx.report
        .line(&format!("[{}] test endpoint: {e}{via}", svc.name));
    let mut extra = e.headers.clone();
    if let Some(h) = &e.host {
        extra.push(("host".into(), h.clone()));
    }
    let checks = checks
        .into_iter()
        .map(|mut c| {
            c.headers.extend(extra.iter().cloned());
            c
        })
        .collect();
    Ok(Some(Resolved {
        url: e.url,
        client,
        checks,
    }))
}

/// What the production listener rule forwards to, judged against the service's pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Production {
    /// Exactly the pair, one at 100 and the other at 0.
    Ok(String),
    /// It forwards elsewhere or split: the release must not start.
    Wrong(String),
    /// It could not be read (the rule is missing, ELBv2 failed).
    Unreadable(String),
    /// Nothing to check (no load balancer, a rolling service, no production rule known).
    NotApplicable,
}

/// One at 100, the other at 0, nothing else: `Ok(detail)` or `Err(what it forwards to)`.
pub fn judge_forwarding(
    forwards: &[(String, Option<i32>)],
    pair: &[String],
) -> Result<String, String> {
    let show = |fw: &[(String, Option<i32>)]| {
        fw.iter()
            .map(|(tg, w)| {
                format!(
                    "{} at weight {}",
                    short_target_group(tg),
                    w.map(|w| w.to_string()).unwrap_or_else(|| "unset".into())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let foreign: Vec<&String> = forwards
        .iter()
        .map(|(tg, _)| tg)
        .filter(|tg| !pair.contains(tg))
        .collect();
    let missing: Vec<&String> = pair
        .iter()
        .filter(|tg| !forwards.iter().any(|(f, _)| f == *tg))
        .collect();
    if !foreign.is_empty() || !missing.is_empty() || forwards.len() != pair.len() {
        let mut why = Vec::new();
        if !foreign.is_empty() {
            why.push(format!(
                "{} not the service's",
                foreign
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !missing.is_empty() {
            why.push(format!(
                "{} missing",
                missing
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Err(format!(
            "it forwards to {}{}",
            show(forwards),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        ));
    }
    let mut weights: Vec<Option<i32>> = forwards.iter().map(|(_, w)| *w).collect();
    weights.sort();
    if weights != [Some(0), Some(100)] {
        return Err(format!("it forwards to {}", show(forwards)));
    }
    Ok(format!("forwards to {}", show(forwards)))
}

/// The production listener rule of `svc` forwards to exactly its two target groups (either one
/// at 100: ECS alternates them after every blue/green deployment), the other at 0.
pub async fn check_production(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    svc: &config::Service,
    live: &EcsService,
) -> Production {
    let Some(lb) = svc
        .load_balancer
        .as_ref()
        .filter(|_| svc.strategy.shifts_traffic())
    else {
        return Production::NotApplicable;
    };
    let Some(rule) = rule_of(svc, Some(live), true) else {
        return Production::NotApplicable;
    };
    let mut pair: Vec<String> = vec![lb.target_group_arn.clone()];
    match lb.alternate_target_group_arn.clone().or_else(|| {
        attached(lb, live)?
            .advanced_configuration()?
            .alternate_target_group_arn()
            .map(str::to_owned)
    }) {
        Some(alt) if alt != lb.target_group_arn => pair.push(alt),
        _ => {}
    }
    let actions = match elb::actions(elb, &rule).await {
        Ok(a) => a,
        Err(e) => return Production::Unreadable(format!("{e:#}")),
    };
    let forwards = elb::forwards(&actions);
    let expected = format!(
        "expected exactly the service's target groups {} with one at weight 100 and the other at 0",
        pair.iter()
            .map(|t| short_target_group(t))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    if forwards.is_empty() {
        return Production::Wrong(format!(
            "production listener rule {rule} of service {} does not forward (its action: {}); {expected}. \
             ECS does not check this before a deployment (aws/containers-roadmap#2853): run `terraform apply` for the environment, or fix the rule",
            svc.name,
            elb::action_kinds(&actions)
        ));
    }
    match judge_forwarding(&forwards, &pair) {
        Ok(detail) => Production::Ok(format!("production listener rule {detail}")),
        Err(what) => Production::Wrong(format!(
            "production listener rule {rule} of service {}: {what}; {expected}. \
             A deployment in flight moves these weights (`deployer status`); otherwise ECS would shift traffic from the wrong groups \
             (it does not check: aws/containers-roadmap#2853): run `terraform apply` for the environment, or fix the rule's forward action",
            svc.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_match_like_elbv2() {
        assert!(path_matches("/*", "/api/v1/health"));
        assert!(path_matches("/api/*", "/api/v1/health?x=1"));
        assert!(path_matches("/api/v?/health", "/api/v1/health"));
        assert!(!path_matches("/api/*", "/health"));
        assert!(!path_matches("/API/*", "/api/x"));
        assert!(path_matches("/health", "/health"));
        assert!(!path_matches("/health", "/healthz"));
    }

    #[test]
    fn a_rule_becomes_a_url_host_header_and_path_patterns() {
        use aws_sdk_elasticloadbalancingv2::types::{
            HostHeaderConditionConfig, PathPatternConditionConfig,
        };
        let host = |v: &[&str]| {
            RuleCondition::builder()
                .field("host-header")
                .host_header_config(
                    HostHeaderConditionConfig::builder()
                        .set_values(Some(v.iter().map(|s| s.to_string()).collect()))
                        .build(),
                )
                .build()
        };
        let route = |protocol: ProtocolEnum, port: i32, conditions: Vec<RuleCondition>| Route {
            arn: "rule".into(),
            protocol: Some(protocol),
            port: Some(port),
            dns_name: "lb-1.elb.amazonaws.com".into(),
            conditions,
            actions: vec![],
        };
        let e = endpoint_of(&route(
            ProtocolEnum::Https,
            8443,
            vec![
                host(&["*.example.com", "web.example.com"]),
                RuleCondition::builder()
                    .field("path-pattern")
                    .path_pattern_config(
                        PathPatternConditionConfig::builder()
                            .values("/api/*")
                            .build(),
                    )
                    .build(),
            ],
        ))
        .unwrap();
        assert_eq!(e.url, "https://lb-1.elb.amazonaws.com:8443");
        assert_eq!(e.host.as_deref(), Some("web.example.com"));
        assert_eq!(e.paths, ["/api/*"]);
        // The scheme's default port is left out; an NLB's TCP listener is called over HTTP.
        assert_eq!(
            endpoint_of(&route(ProtocolEnum::Tcp, 80, vec![]))
                .unwrap()
                .url,
            "http://lb-1.elb.amazonaws.com"
        );
        let wild = endpoint_of(&route(
            ProtocolEnum::Http,
            80,
            vec![host(&["*.example.com"])],
        ))
        .unwrap_err();
        assert!(wild.contains("only wildcard values"), "{wild}");
        let other = RuleCondition::builder()
            .field("source-ip")
            .values("10.0.0.0/8")
            .build();
        let refused = endpoint_of(&route(ProtocolEnum::Http, 80, vec![other])).unwrap_err();
        assert!(refused.contains("source-ip"), "{refused}");
        assert!(endpoint_of(&route(ProtocolEnum::Udp, 53, vec![])).is_err());
    }

    #[test]
    fn forwarding_needs_the_pair_at_100_and_0() {
        let pair = vec!["tg/blue".to_owned(), "tg/green".to_owned()];
        let fw = |v: &[(&str, i32)]| -> Vec<(String, Option<i32>)> {
            v.iter().map(|(t, w)| ((*t).to_owned(), Some(*w))).collect()
        };
        assert!(judge_forwarding(&fw(&[("tg/blue", 100), ("tg/green", 0)]), &pair).is_ok());
        // Either of the pair may serve (ECS alternates them).
        assert!(judge_forwarding(&fw(&[("tg/blue", 0), ("tg/green", 100)]), &pair).is_ok());
        let split = judge_forwarding(&fw(&[("tg/blue", 50), ("tg/green", 50)]), &pair).unwrap_err();
        assert!(split.contains("weight 50"), "{split}");
        let foreign =
            judge_forwarding(&fw(&[("tg/blue", 100), ("tg/other", 0)]), &pair).unwrap_err();
        assert!(foreign.contains("tg/other not the service's"), "{foreign}");
        assert!(foreign.contains("tg/green missing"), "{foreign}");
        assert!(judge_forwarding(&fw(&[("tg/blue", 100)]), &pair).is_err());
    }
}
