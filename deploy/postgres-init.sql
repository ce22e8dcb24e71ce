-- Run once by the postgres image on an empty data volume (deploy/compose.yaml).
create database dagster owner trackhouse;
