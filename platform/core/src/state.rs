//! The workflow state machine.
//!
//! initiated → scaffolding → validating → e2e_testing → integrating → deploying → completed,
//! and from any non-terminal state to `failed` or `cancelled`. Nothing leaves a terminal state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a workflow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    Initiated,
    Scaffolding,
    Validating,
    E2eTesting,
    Integrating,
    Deploying,
    Completed,
    Failed,
    Cancelled,
}

impl WorkflowState {
    pub const ALL: [WorkflowState; 9] = [
        Self::Initiated,
        Self::Scaffolding,
        Self::Validating,
        Self::E2eTesting,
        Self::Integrating,
        Self::Deploying,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Scaffolding => "scaffolding",
            Self::Validating => "validating",
            Self::E2eTesting => "e2e_testing",
            Self::Integrating => "integrating",
            Self::Deploying => "deploying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The stage whose agent works while the workflow is in this state.
    pub fn stage(self) -> Option<Stage> {
        match self {
            Self::Scaffolding => Some(Stage::Scaffold),
            Self::Validating => Some(Stage::Validation),
            Self::E2eTesting => Some(Stage::E2e),
            Self::Integrating => Some(Stage::Integration),
            Self::Deploying => Some(Stage::Deployment),
            _ => None,
        }
    }

    /// The state the happy path goes to next, if any.
    pub fn next(self) -> Option<WorkflowState> {
        match self {
            Self::Initiated => Some(Self::Scaffolding),
            Self::Scaffolding => Some(Self::Validating),
            Self::Validating => Some(Self::E2eTesting),
            Self::E2eTesting => Some(Self::Integrating),
            Self::Integrating => Some(Self::Deploying),
            Self::Deploying => Some(Self::Completed),
            _ => None,
        }
    }

    /// Checks that `self → to` is a legal transition.
    pub fn transition(self, to: WorkflowState) -> Result<WorkflowState, TransitionError> {
        let legal = if self.is_terminal() {
            false
        } else {
            matches!(to, Self::Failed | Self::Cancelled) || self.next() == Some(to)
        };
        if legal {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?}; expected one of: {expected}")]
pub struct ParseError {
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for WorkflowState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseError {
                value: s.to_owned(),
                expected: "initiated, scaffolding, validating, e2e_testing, integrating, deploying, completed, failed, cancelled",
            })
    }
}

/// An illegal transition, rejected by the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal workflow transition {from} → {to}")]
pub struct TransitionError {
    pub from: WorkflowState,
    pub to: WorkflowState,
}

/// The five stages, one agent kind each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Scaffold,
    Validation,
    E2e,
    Integration,
    Deployment,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Self::Scaffold,
        Self::Validation,
        Self::E2e,
        Self::Integration,
        Self::Deployment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scaffold => "scaffold",
            Self::Validation => "validation",
            Self::E2e => "e2e",
            Self::Integration => "integration",
            Self::Deployment => "deployment",
        }
    }

    /// The workflow state while this stage runs.
    pub fn state(self) -> WorkflowState {
        match self {
            Self::Scaffold => WorkflowState::Scaffolding,
            Self::Validation => WorkflowState::Validating,
            Self::E2e => WorkflowState::E2eTesting,
            Self::Integration => WorkflowState::Integrating,
            Self::Deployment => WorkflowState::Deploying,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseError {
                value: s.to_owned(),
                expected: "scaffold, validation, e2e, integration, deployment",
            })
    }
}

/// What a workflow builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowType {
    App,
    Feature,
    Bugfix,
}

impl WorkflowType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Feature => "feature",
            Self::Bugfix => "bugfix",
        }
    }
}

impl fmt::Display for WorkflowType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkflowType {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "app" => Ok(Self::App),
            "feature" => Ok(Self::Feature),
            "bugfix" => Ok(Self::Bugfix),
            _ => Err(ParseError {
                value: s.to_owned(),
                expected: "app, feature, bugfix",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkflowState::*;

    #[test]
    fn happy_path_walks_every_stage_in_order() {
        let mut s = Initiated;
        let mut seen = vec![s];
        while let Some(n) = s.next() {
            s = s.transition(n).unwrap();
            seen.push(s);
        }
        assert_eq!(
            seen,
            [
                Initiated,
                Scaffolding,
                Validating,
                E2eTesting,
                Integrating,
                Deploying,
                Completed
            ]
        );
    }

    #[test]
    fn terminal_states_never_move() {
        for from in [Completed, Failed, Cancelled] {
            for to in WorkflowState::ALL {
                assert_eq!(from.transition(to), Err(TransitionError { from, to }));
            }
        }
    }

    #[test]
    fn skipping_or_going_back_is_rejected() {
        assert!(Initiated.transition(Validating).is_err());
        assert!(Validating.transition(Scaffolding).is_err());
        assert!(Deploying.transition(Deploying).is_err());
        assert!(Scaffolding.transition(Completed).is_err());
    }

    #[test]
    fn any_live_state_can_fail_or_be_cancelled() {
        for from in WorkflowState::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert_eq!(from.transition(Failed), Ok(Failed));
            assert_eq!(from.transition(Cancelled), Ok(Cancelled));
        }
    }

    #[test]
    fn names_round_trip() {
        for s in WorkflowState::ALL {
            assert_eq!(s.as_str().parse::<WorkflowState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>(), Ok(s));
            assert_eq!(s.state().stage(), Some(s));
        }
        assert!("App".parse::<WorkflowType>().is_err());
        assert!("nope".parse::<Stage>().is_err());
    }
}
