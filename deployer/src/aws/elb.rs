//! ELBv2 reads: what a listener rule routes (its listener's protocol and port, the load
//! balancer's DNS name, its conditions), what it forwards to (target groups and weights), and a
//! target group's target health. An `advancedConfiguration` listener rule is a rule ARN for an
//! Application Load Balancer and a listener ARN for a Network Load Balancer (its default
//! action); both are read here.

use anyhow::{Context, Result, anyhow};
use aws_sdk_elasticloadbalancingv2::Client as Elb;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ProtocolEnum, RuleCondition, TargetHealthStateEnum,
};

/// A listener rule (or an NLB listener) with what it is attached to.
#[derive(Debug, Clone)]
pub struct Route {
    /// The ARN read (rule or listener).
    pub arn: String,
    pub protocol: Option<ProtocolEnum>,
    pub port: Option<i32>,
    pub dns_name: String,
    pub conditions: Vec<RuleCondition>,
    pub actions: Vec<Action>,
}

/// Whether `arn` names a listener (an NLB's `productionListenerRule`/`testListenerRule`) rather
/// than a listener rule.
pub fn is_listener(arn: &str) -> bool {
    arn.contains(":listener/")
}

/// The listener a rule ARN belongs to: `…:listener-rule/app/lb/ID/LISTENER/RULE` →
/// `…:listener/app/lb/ID/LISTENER` (the ARN format ELBv2 documents; DescribeRules does not
/// return the listener).
pub fn listener_of_rule(rule_arn: &str) -> Option<String> {
    let (head, _rule_id) = rule_arn.rsplit_once('/')?;
    head.contains(":listener-rule/")
        .then(|| head.replacen(":listener-rule/", ":listener/", 1))
}

/// The actions of a rule (DescribeRules) or of a listener's default (DescribeListeners).
pub async fn actions(elb: &Elb, arn: &str) -> Result<Vec<Action>> {
    if is_listener(arn) {
        let l = listener(elb, arn).await?;
        return Ok(l.default_actions().to_vec());
    }
    let out = elb
        .describe_rules()
        .rule_arns(arn)
        .send()
        .await
        .map_err(|e| anyhow!("ELBv2 DescribeRules {arn}: {}", super::error_chain(&e)))?;
    let rule = out
        .rules()
        .first()
        .ok_or_else(|| anyhow!("ELBv2 DescribeRules {arn}: no such rule"))?;
    Ok(rule.actions().to_vec())
}

async fn listener(elb: &Elb, arn: &str) -> Result<aws_sdk_elasticloadbalancingv2::types::Listener> {
    let out = elb
        .describe_listeners()
        .listener_arns(arn)
        .send()
        .await
        .map_err(|e| anyhow!("ELBv2 DescribeListeners {arn}: {}", super::error_chain(&e)))?;
    out.listeners()
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("ELBv2 DescribeListeners {arn}: no such listener"))
}

/// The rule (or listener), its listener and its load balancer: DescribeRules,
/// DescribeListeners, DescribeLoadBalancers.
pub async fn route(elb: &Elb, arn: &str) -> Result<Route> {
    let (listener_arn, conditions, actions) = if is_listener(arn) {
        (arn.to_owned(), Vec::new(), None)
    } else {
        let out = elb
            .describe_rules()
            .rule_arns(arn)
            .send()
            .await
            .map_err(|e| anyhow!("ELBv2 DescribeRules {arn}: {}", super::error_chain(&e)))?;
        let rule = out
            .rules()
            .first()
            .ok_or_else(|| anyhow!("ELBv2 DescribeRules {arn}: no such rule"))?;
        let listener_arn =
            listener_of_rule(arn).with_context(|| format!("{arn} is not a listener rule ARN"))?;
        (
            listener_arn,
            rule.conditions().to_vec(),
            Some(rule.actions().to_vec()),
        )
    };
    let l = listener(elb, &listener_arn).await?;
    let lb_arn = l
        .load_balancer_arn()
        .with_context(|| format!("listener {listener_arn} has no load balancer"))?;
    let lbs = elb
        .describe_load_balancers()
        .load_balancer_arns(lb_arn)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "ELBv2 DescribeLoadBalancers {lb_arn}: {}",
                super::error_chain(&e)
            )
        })?;
    let dns_name = lbs
        .load_balancers()
        .first()
        .and_then(|lb| lb.dns_name())
        .with_context(|| format!("load balancer {lb_arn} has no DNS name"))?
        .to_owned();
    Ok(Route {
        arn: arn.to_owned(),
        protocol: l.protocol().cloned(),
        port: l.port(),
        dns_name,
        conditions,
        actions: actions.unwrap_or_else(|| l.default_actions().to_vec()),
    })
}

/// Where the actions forward to: each target group with its weight (`None`: not given). A
/// forward action with a plain `TargetGroupArn` sends it everything (100). Empty when no action
/// forwards (fixed-response, redirect).
pub fn forwards(actions: &[Action]) -> Vec<(String, Option<i32>)> {
    let Some(forward) = actions
        .iter()
        .find(|a| a.r#type() == Some(&ActionTypeEnum::Forward))
    else {
        return Vec::new();
    };
    let groups: Vec<(String, Option<i32>)> = forward
        .forward_config()
        .map(|f| f.target_groups())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t.target_group_arn()?.to_owned(), t.weight())))
        .collect();
    if groups.is_empty() {
        forward
            .target_group_arn()
            .map(|tg| vec![(tg.to_owned(), Some(100))])
            .unwrap_or_default()
    } else {
        groups
    }
}

/// The kinds of the actions (`fixed-response`, `redirect`, …), for a message.
pub fn action_kinds(actions: &[Action]) -> String {
    let kinds: Vec<&str> = actions
        .iter()
        .filter_map(|a| a.r#type().map(|t| t.as_str()))
        .collect();
    if kinds.is_empty() {
        "no action".into()
    } else {
        kinds.join(", ")
    }
}

/// One target of a target group and its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub target: String,
    pub state: Option<TargetHealthStateEnum>,
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// DescribeTargetHealth of every registered target of `target_group`.
pub async fn target_health(elb: &Elb, target_group: &str) -> Result<Vec<TargetHealth>> {
    let out = elb
        .describe_target_health()
        .target_group_arn(target_group)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "ELBv2 DescribeTargetHealth {target_group}: {}",
                super::error_chain(&e)
            )
        })?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let t = d.target();
            TargetHealth {
                target: match (t.and_then(|t| t.id()), t.and_then(|t| t.port())) {
                    (Some(id), Some(port)) => format!("{id}:{port}"),
                    (Some(id), None) => id.to_owned(),
                    _ => "?".into(),
                },
                state: d.target_health().and_then(|h| h.state()).cloned(),
                reason: d
                    .target_health()
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_owned()),
                description: d
                    .target_health()
                    .and_then(|h| h.description())
                    .map(str::to_owned),
            }
        })
        .collect())
}

/// `targetgroup/blue/1234` → `blue`, for messages.
pub fn short_target_group(arn: &str) -> &str {
    arn.split(":targetgroup/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{ForwardActionConfig, TargetGroupTuple};

    #[test]
    fn a_rule_arn_names_its_listener() {
        assert_eq!(
            listener_of_rule(
                "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
            )
            .as_deref(),
            Some(
                "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/lb/50dc6c495c0c9188/f2f7dc8efc522ab2"
            )
        );
        assert_eq!(
            listener_of_rule("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1"),
            None
        );
        assert!(is_listener(
            "arn:aws:elasticloadbalancing:us-east-1:1:listener/net/lb/1/2"
        ));
    }

    #[test]
    fn forwards_reads_weights_and_the_plain_target_group() {
        let weighted = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("a")
                            .weight(50)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("b")
                            .weight(50)
                            .build(),
                    )
                    .build(),
            )
            .build();
        assert_eq!(
            forwards(&[weighted]),
            vec![("a".to_owned(), Some(50)), ("b".to_owned(), Some(50))]
        );
        let plain = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("a")
            .build();
        assert_eq!(forwards(&[plain]), vec![("a".to_owned(), Some(100))]);
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .build();
        assert!(forwards(std::slice::from_ref(&fixed)).is_empty());
        assert_eq!(action_kinds(&[fixed]), "fixed-response");
    }
}
