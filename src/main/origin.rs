//! Where each setting's value came from. A value set by an environment variable leaves no
//! trace on the command line, so an error about it names the variable as well as the flag.

use clap::{
    error::{ContextKind, ContextValue, ErrorKind},
    parser::ValueSource,
    ArgMatches, Command, FromArgMatches,
};

/// The settings whose values came from the environment: each flag with its variable.
#[derive(Debug, Default)]
pub struct FromEnvironment(Vec<(String, String)>);

impl FromEnvironment {
    /// What `matches` (of `command`, or of the subcommand it names) took from the
    /// environment.
    fn of(command: &Command, matches: &ArgMatches) -> FromEnvironment {
        let (command, matches) = match matches.subcommand() {
            Some((name, sub)) => match command.find_subcommand(name) {
                Some(subcommand) => (subcommand, sub),
                None => return FromEnvironment::default(),
            },
            None => (command, matches),
        };
        let from_env = command
            .get_arguments()
            .filter(|arg| {
                matches.value_source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable)
            })
            .filter_map(|arg| {
                let env = arg.get_env()?.to_str()?;
                Some((format!("--{}", arg.get_long()?), env.to_owned()))
            })
            .collect();
        FromEnvironment(from_env)
    }

    /// ` (set by VARIABLE)` when `flag`'s value came from the environment, else nothing.
    pub fn note(&self, flag: &str) -> String {
        self.0
            .iter()
            .find(|(f, _)| f == flag)
            .map_or(String::new(), |(_, env)| format!(" (set by {env})"))
    }
}

/// Parses the command line and the environment as `command` says; a refused value that
/// came from the environment is reported with its variable's name. Exits as clap does on
/// an error, `--help` or `--version`.
pub fn parse<T: FromArgMatches>(command: Command) -> (T, FromEnvironment) {
    let matches = command
        .clone()
        .try_get_matches()
        .unwrap_or_else(|e| exit_naming_variable(e, &command));
    let parsed = T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (parsed, FromEnvironment::of(&command, &matches))
}

/// Prints clap's error, with the variable that set the refused value when one did, and
/// exits with clap's code.
fn exit_naming_variable(e: clap::Error, command: &Command) -> ! {
    let refused_value = matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    );
    let variable = refused_value
        .then(|| refused_flag(&e))
        .flatten()
        .and_then(|flag| variable_that_set(command, &flag));
    let Some(variable) = variable else { e.exit() };
    let text = e.render().to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    eprint!("{first} (set by {variable})\n{rest}");
    std::process::exit(e.exit_code());
}

/// The flag a value error is about: `--rate` of `--rate <RATE>`.
fn refused_flag(e: &clap::Error) -> Option<String> {
    match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(arg) => Some(arg.split_whitespace().next()?.to_owned()),
        _ => None,
    }
}

/// The environment variable that gave `flag` its value: its twin, when it is set and the
/// flag is not on the command line.
fn variable_that_set(command: &Command, flag: &str) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let on_command_line = std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if on_command_line {
        return None;
    }
    std::iter::once(command)
        .chain(command.get_subcommands())
        .flat_map(Command::get_arguments)
        .filter(|arg| arg.get_long() == Some(long))
        .filter_map(|arg| arg.get_env()?.to_str().map(str::to_owned))
        .find(|env| std::env::var_os(env).is_some())
}
