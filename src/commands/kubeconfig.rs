//! `dexcred kubeconfig`: print or merge a kubeconfig for a PCD-K cluster.

use crate::cli::KubeconfigArgs;
use crate::error::{Error, Result};

pub fn run(_args: &KubeconfigArgs) -> Result<()> {
    Err(Error::usage("dexcred kubeconfig is not implemented yet"))
}
