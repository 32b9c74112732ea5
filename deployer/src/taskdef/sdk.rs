//! The task-definition model's conversion to the SDK's RegisterTaskDefinition request.

use deployer_taskdef::*;

use aws_sdk_ecs::types as t;

type BuildResult<T> = Result<T, aws_sdk_ecs::error::BuildError>;

fn strs(v: &Option<Vec<String>>) -> Option<Vec<String>> {
    v.clone()
}

fn container_to_sdk(c: &ContainerDefinition) -> BuildResult<t::ContainerDefinition> {
    let mut b = t::ContainerDefinition::builder()
        .name(&c.name)
        .image(&c.image)
        .set_cpu(c.cpu)
        .set_memory(c.memory)
        .set_memory_reservation(c.memory_reservation)
        .set_links(strs(&c.links))
        .set_essential(c.essential)
        .set_entry_point(strs(&c.entry_point))
        .set_command(strs(&c.command))
        .set_start_timeout(c.start_timeout)
        .set_stop_timeout(c.stop_timeout)
        .set_version_consistency(c.version_consistency.as_deref().map(Into::into))
        .set_hostname(c.hostname.clone())
        .set_user(c.user.clone())
        .set_working_directory(c.working_directory.clone())
        .set_disable_networking(c.disable_networking)
        .set_privileged(c.privileged)
        .set_readonly_root_filesystem(c.readonly_root_filesystem)
        .set_dns_servers(strs(&c.dns_servers))
        .set_dns_search_domains(strs(&c.dns_search_domains))
        .set_docker_security_options(strs(&c.docker_security_options))
        .set_interactive(c.interactive)
        .set_pseudo_terminal(c.pseudo_terminal)
        .set_docker_labels(
            c.docker_labels
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        );
    if let Some(r) = &c.repository_credentials {
        b = b.repository_credentials(
            t::RepositoryCredentials::builder()
                .credentials_parameter(&r.credentials_parameter)
                .build()?,
        );
    }
    for pm in c.port_mappings.iter().flatten() {
        b = b.port_mappings(
            t::PortMapping::builder()
                .set_container_port(pm.container_port)
                .set_host_port(pm.host_port)
                .set_protocol(pm.protocol.as_deref().map(Into::into))
                .set_name(pm.name.clone())
                .set_app_protocol(pm.app_protocol.as_deref().map(Into::into))
                .set_container_port_range(pm.container_port_range.clone())
                .build(),
        );
    }
    if let Some(r) = &c.restart_policy {
        b = b.restart_policy(
            t::ContainerRestartPolicy::builder()
                .enabled(r.enabled)
                .set_ignored_exit_codes(r.ignored_exit_codes.clone())
                .set_restart_attempt_period(r.restart_attempt_period)
                .build()?,
        );
    }
    for kv in c.environment.iter().flatten() {
        b = b.environment(
            t::KeyValuePair::builder()
                .name(&kv.name)
                .value(&kv.value)
                .build(),
        );
    }
    for f in c.environment_files.iter().flatten() {
        b = b.environment_files(
            t::EnvironmentFile::builder()
                .value(&f.value)
                .r#type(f.kind.as_str().into())
                .build()?,
        );
    }
    for m in c.mount_points.iter().flatten() {
        b = b.mount_points(
            t::MountPoint::builder()
                .set_source_volume(m.source_volume.clone())
                .set_container_path(m.container_path.clone())
                .set_read_only(m.read_only)
                .build(),
        );
    }
    for v in c.volumes_from.iter().flatten() {
        b = b.volumes_from(
            t::VolumeFrom::builder()
                .set_source_container(v.source_container.clone())
                .set_read_only(v.read_only)
                .build(),
        );
    }
    if let Some(lp) = &c.linux_parameters {
        let caps = lp.capabilities.as_ref().map(|cap| {
            t::KernelCapabilities::builder()
                .set_add(cap.add.clone())
                .set_drop(cap.drop.clone())
                .build()
        });
        b = b.linux_parameters(
            t::LinuxParameters::builder()
                .set_capabilities(caps)
                .set_init_process_enabled(lp.init_process_enabled)
                .set_shared_memory_size(lp.shared_memory_size)
                .set_max_swap(lp.max_swap)
                .set_swappiness(lp.swappiness)
                .build(),
        );
    }
    for s in c.secrets.iter().flatten() {
        b = b.secrets(secret_to_sdk(s)?);
    }
    for d in c.depends_on.iter().flatten() {
        b = b.depends_on(
            t::ContainerDependency::builder()
                .container_name(&d.container_name)
                .condition(d.condition.as_str().into())
                .build()?,
        );
    }
    for h in c.extra_hosts.iter().flatten() {
        b = b.extra_hosts(
            t::HostEntry::builder()
                .hostname(&h.hostname)
                .ip_address(&h.ip_address)
                .build()?,
        );
    }
    for u in c.ulimits.iter().flatten() {
        b = b.ulimits(
            t::Ulimit::builder()
                .name(u.name.as_str().into())
                .soft_limit(u.soft_limit)
                .hard_limit(u.hard_limit)
                .build()?,
        );
    }
    if let Some(l) = &c.log_configuration {
        let mut lb = t::LogConfiguration::builder()
            .log_driver(l.log_driver.as_str().into())
            .set_options(
                l.options
                    .as_ref()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            );
        for s in l.secret_options.iter().flatten() {
            lb = lb.secret_options(secret_to_sdk(s)?);
        }
        b = b.log_configuration(lb.build()?);
    }
    if let Some(h) = &c.health_check {
        b = b.health_check(
            t::HealthCheck::builder()
                .set_command(Some(h.command.clone()))
                .set_interval(h.interval)
                .set_timeout(h.timeout)
                .set_retries(h.retries)
                .set_start_period(h.start_period)
                .build()?,
        );
    }
    for s in c.system_controls.iter().flatten() {
        b = b.system_controls(
            t::SystemControl::builder()
                .namespace(&s.namespace)
                .value(&s.value)
                .build(),
        );
    }
    for r in c.resource_requirements.iter().flatten() {
        b = b.resource_requirements(
            t::ResourceRequirement::builder()
                .value(&r.value)
                .r#type(r.kind.as_str().into())
                .build()?,
        );
    }
    if let Some(f) = &c.firelens_configuration {
        b = b.firelens_configuration(
            t::FirelensConfiguration::builder()
                .r#type(f.kind.as_str().into())
                .set_options(
                    f.options
                        .as_ref()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                )
                .build()?,
        );
    }
    Ok(b.build())
}

fn secret_to_sdk(s: &Secret) -> BuildResult<t::Secret> {
    t::Secret::builder()
        .name(&s.name)
        .value_from(&s.value_from)
        .build()
}

/// Fills a RegisterTaskDefinition request with `td`. `extra_tags` are added to the
/// definition's own tags (e.g. git sha and release id).
pub fn register_request(
    td: &TaskDefinition,
    client: &aws_sdk_ecs::Client,
    extra_tags: &[(String, String)],
) -> BuildResult<
    aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
> {
    let mut r = client
        .register_task_definition()
        .family(&td.family)
        .set_task_role_arn(td.task_role_arn.clone())
        .set_execution_role_arn(td.execution_role_arn.clone())
        .set_network_mode(td.network_mode.as_deref().map(Into::into))
        .set_requires_compatibilities(
            td.requires_compatibilities
                .as_ref()
                .map(|v| v.iter().map(|c| c.as_str().into()).collect()),
        )
        .set_cpu(td.cpu.clone())
        .set_memory(td.memory.clone())
        .set_pid_mode(td.pid_mode.as_deref().map(Into::into))
        .set_ipc_mode(td.ipc_mode.as_deref().map(Into::into))
        .set_enable_fault_injection(td.enable_fault_injection);
    for c in &td.container_definitions {
        r = r.container_definitions(container_to_sdk(c)?);
    }
    for v in td.volumes.iter().flatten() {
        let mut vb = t::Volume::builder()
            .name(&v.name)
            .set_configured_at_launch(v.configured_at_launch);
        if let Some(h) = &v.host {
            vb = vb.host(
                t::HostVolumeProperties::builder()
                    .set_source_path(h.source_path.clone())
                    .build(),
            );
        }
        if let Some(e) = &v.efs_volume_configuration {
            let auth = e.authorization_config.as_ref().map(|a| {
                t::EfsAuthorizationConfig::builder()
                    .set_access_point_id(a.access_point_id.clone())
                    .set_iam(a.iam.as_deref().map(Into::into))
                    .build()
            });
            vb = vb.efs_volume_configuration(
                t::EfsVolumeConfiguration::builder()
                    .file_system_id(&e.file_system_id)
                    .set_root_directory(e.root_directory.clone())
                    .set_transit_encryption(e.transit_encryption.as_deref().map(Into::into))
                    .set_transit_encryption_port(e.transit_encryption_port)
                    .set_authorization_config(auth)
                    .build()?,
            );
        }
        r = r.volumes(vb.build());
    }
    for pc in td.placement_constraints.iter().flatten() {
        r = r.placement_constraints(
            t::TaskDefinitionPlacementConstraint::builder()
                .r#type(pc.kind.as_str().into())
                .set_expression(pc.expression.clone())
                .build(),
        );
    }
    let own = td
        .tags
        .iter()
        .flatten()
        .map(|tg| (tg.key.clone(), tg.value.clone()));
    for (k, v) in own.chain(extra_tags.iter().cloned()) {
        r = r.tags(t::Tag::builder().key(k).value(v).build());
    }
    if let Some(rp) = &td.runtime_platform {
        r = r.runtime_platform(
            t::RuntimePlatform::builder()
                .set_cpu_architecture(rp.cpu_architecture.as_deref().map(Into::into))
                .set_operating_system_family(rp.operating_system_family.as_deref().map(Into::into))
                .build(),
        );
    }
    if let Some(es) = &td.ephemeral_storage {
        r = r.ephemeral_storage(
            t::EphemeralStorage::builder()
                .size_in_gib(es.size_in_gi_b)
                .build(),
        );
    }
    Ok(r)
}
