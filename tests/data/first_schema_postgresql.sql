-- The store's FIRST schema (postgresql), as create_schema() of the first release (commit 9b678d0,
-- activities/tables.py, SCHEMA_VERSION 1) created it. Frozen: tests/test_migrations.py upgrades it.

CREATE TABLE schema_version (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE request_record (
	workflow_id VARCHAR(200) NOT NULL, 
	request_id VARCHAR(64) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	generation_class VARCHAR(8), 
	installation_number VARCHAR(32), 
	service_note VARCHAR(16), 
	protocol VARCHAR(32), 
	due_at TIMESTAMP WITH TIME ZONE, 
	due_rule VARCHAR(64), 
	sla_breaches INTEGER NOT NULL, 
	technician VARCHAR(64), 
	cycle INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (workflow_id)
);

CREATE INDEX ix_request_record_installation_number ON request_record (installation_number);

CREATE INDEX ix_request_record_protocol ON request_record (protocol);

CREATE INDEX ix_request_record_request_id ON request_record (request_id);

CREATE INDEX ix_request_record_service_note ON request_record (service_note);

CREATE INDEX ix_request_record_status ON request_record (status);

CREATE INDEX ix_request_record_technician ON request_record (technician);

CREATE TABLE event_record (
	id SERIAL NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	event_key VARCHAR(200) NOT NULL, 
	process VARCHAR(16) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	actor_id VARCHAR(64), 
	actor_role VARCHAR(16), 
	reasons JSONB NOT NULL, 
	documents JSONB NOT NULL, 
	data JSONB NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_event_key UNIQUE (workflow_id, event_key)
);

CREATE INDEX ix_event_record_at ON event_record (at);

CREATE TABLE document_record (
	sha256 VARCHAR(64) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	filename VARCHAR(255) NOT NULL, 
	size INTEGER NOT NULL, 
	content_type VARCHAR(64) NOT NULL, 
	stored_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (sha256)
);

CREATE TABLE outbox (
	key VARCHAR(300) NOT NULL, 
	template VARCHAR(100) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	message_id VARCHAR(300), 
	detail VARCHAR, 
	recipients_count INTEGER NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	sent_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (key)
);

CREATE TABLE technician_record (
	key VARCHAR(64) NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (key)
);

CREATE TABLE technician_secret (
	id SERIAL NOT NULL, 
	technician VARCHAR(64) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	secret_hash VARCHAR(512) NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	expires_at TIMESTAMP WITH TIME ZONE, 
	used_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_technician_secret UNIQUE (technician, kind)
);

CREATE TABLE beneficiary_allocation (
	id SERIAL NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	request_id VARCHAR(64) NOT NULL, 
	generator_installation VARCHAR(32) NOT NULL, 
	modality VARCHAR(16) NOT NULL, 
	mode VARCHAR(16) NOT NULL, 
	units JSONB NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	effective_from DATE, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	current BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_beneficiary_allocation_generator_installation ON beneficiary_allocation (generator_installation);

CREATE INDEX ix_beneficiary_allocation_workflow_id ON beneficiary_allocation (workflow_id);

CREATE UNIQUE INDEX uq_allocation_current ON beneficiary_allocation (generator_installation) WHERE "current";

CREATE TABLE number_sequence (
	name VARCHAR(64) NOT NULL, 
	value BIGINT NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE issued_number (
	id SERIAL NOT NULL, 
	workflow_id VARCHAR(200) NOT NULL, 
	step VARCHAR(64) NOT NULL, 
	service_note VARCHAR(16) NOT NULL, 
	protocol VARCHAR(16) NOT NULL, 
	issued_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_issued_step UNIQUE (workflow_id, step), 
	UNIQUE (service_note), 
	UNIQUE (protocol)
);
