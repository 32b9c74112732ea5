//! The workflow state machine.
//!
//! initiated → scaffolding → validating → e2e_testing → integrating → deploying → completed,
//! and from any non-terminal state to `failed` or `cancelled`. Nothing leaves a terminal state.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An enum of unit variants, each with one name: `ALL`, `as_str`, `Display`, `FromStr` (whose
/// error lists the names) and serde all use that one list, so they cannot disagree.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $first:ident => $first_text:literal $(, $v:ident => $text:literal)* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            #[serde(rename = $first_text)]
            $first,
            $(#[serde(rename = $text)] $v,)*
        }

        impl $name {
            pub const ALL: [$name; 1 $(+ named_enum!(@one $v))*] = [Self::$first $(, Self::$v)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    Self::$first => $first_text,
                    $(Self::$v => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| ParseError {
                        value: s.to_owned(),
                        expected: concat!($first_text $(, ", ", $text)*),
                    })
            }
        }
    };
    (@one $v:ident) => {
        1
    };
}

named_enum! {
    /// Where a workflow is.
    pub enum WorkflowState {
        Initiated => "initiated",
        Scaffolding => "scaffolding",
        Validating => "validating",
        E2eTesting => "e2e_testing",
        Integrating => "integrating",
        Deploying => "deploying",
        Completed => "completed",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl WorkflowState {
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

    /// An operator's retry (or DLQ redrive) of a failed workflow: `failed` → the state of the
    /// stage that failed, so that stage runs again as a new attempt. The one way out of a terminal
    /// state, and only out of `failed`: completed and cancelled workflows stay where they are.
    pub fn retry(self, stage: Stage) -> Result<WorkflowState, TransitionError> {
        let to = stage.state();
        if self == Self::Failed {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {value:?}; expected one of: {expected}")]
pub struct ParseError {
    pub value: String,
    pub expected: &'static str,
}

/// An illegal transition, rejected by the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal workflow transition {from} → {to}")]
pub struct TransitionError {
    pub from: WorkflowState,
    pub to: WorkflowState,
}

named_enum! {
    /// The five stages, one agent kind each.
    pub enum Stage {
        Scaffold => "scaffold",
        Validation => "validation",
        E2e => "e2e",
        Integration => "integration",
        Deployment => "deployment",
    }
}

impl Stage {
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

named_enum! {
    /// What a workflow builds.
    pub enum WorkflowType {
        App => "app",
        Feature => "feature",
        Bugfix => "bugfix",
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
    fn only_a_failed_workflow_is_retried_and_into_its_stage() {
        for stage in Stage::ALL {
            assert_eq!(Failed.retry(stage), Ok(stage.state()));
            for from in WorkflowState::ALL.into_iter().filter(|s| *s != Failed) {
                assert!(from.retry(stage).is_err(), "{from} → retry {stage}");
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
        for t in WorkflowType::ALL {
            assert_eq!(t.as_str().parse::<WorkflowType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert!("App".parse::<WorkflowType>().is_err());
        assert_eq!(
            "nope".parse::<WorkflowType>().unwrap_err().to_string(),
            "unknown value \"nope\"; expected one of: app, feature, bugfix"
        );
        assert!("nope".parse::<Stage>().is_err());
    }
}
