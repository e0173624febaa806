%% @doc The e-mail channel: a plain-text message over SMTP, sent by the Rust core
%% (`emqx_guard_core:send_mail/3', lettre) with the attempt's timeout and deadline. Which SMTP
%% failures are worth another try is `emqx_guard_retry''s rule for `mail'.
-module(emqx_guard_channel_email).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4]).
-export([smtp_config/2]).

-define(DEFAULT_DEADLINE, 120000).

%% @private
-spec kind() -> email.
kind() -> email.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [
        {notify_smtp_server, host, <<>>},
        {notify_smtp_port, port, 587},
        {notify_smtp_tls, smtp_tls, <<"starttls">>},
        {notify_smtp_user, text, <<>>},
        {notify_smtp_password, password, <<>>},
        {notify_from, address, <<>>},
        {notify_to, addresses, []}
    ].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [
        {<<"server">>, notify_smtp_server},
        {<<"host">>, notify_smtp_server},
        {<<"port">>, notify_smtp_port},
        {<<"tls">>, notify_smtp_tls},
        {<<"user">>, notify_smtp_user},
        {<<"password">>, notify_smtp_password},
        {<<"from">>, notify_from},
        {<<"verify">>, notify_tls_verify},
        {<<"ca_file">>, notify_ca_file}
    ].

%% @doc E-mail goes out when a server and at least one recipient are set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    #{notify_smtp_server := Server, notify_to := To} = emqx_guard_notify_config:of_settings(Settings),
    Server =/= <<>> andalso To =/= [].

%% @doc `server:port'.
-spec target(map()) -> binary().
target(Settings) ->
    S = emqx_guard_notify_config:of_settings(Settings),
    iolist_to_binary([maps:get(notify_smtp_server, S), ":", integer_to_binary(maps:get(notify_smtp_port, S))]).

%% @doc One SMTP session. Opts: `timeout_ms' (each network step), `deadline_ms' (the session).
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    Config0 = smtp_config(Settings, maps:get(timeout_ms, Opts, 30000)),
    Config = Config0#{deadline_ms => maps:get(deadline_ms, Opts, ?DEFAULT_DEADLINE)},
    Subject = emqx_guard_notify_format:subject(Event, Facts),
    Body = emqx_guard_notify_format:body(Event, Facts),
    case emqx_guard_core:send_mail(Config, Subject, Body) of
        {ok, Answer} ->
            {ok, Answer};
        {error, {Reason, Detail}} ->
            Line = <<(atom_to_binary(Reason))/binary, ": ", Detail/binary>>,
            case emqx_guard_retry:retryable(mail, Reason) of
                true -> {retry, Line};
                false -> {error, Line}
            end
    end.

%% @doc The config map `emqx_guard_core:send_mail/3' takes.
-spec smtp_config(map(), pos_integer()) -> map().
smtp_config(Settings, TimeoutMs) ->
    S = emqx_guard_notify_config:of_settings(Settings),
    Auth =
        case maps:get(notify_smtp_user, S) of
            <<>> -> #{};
            User -> #{username => User, password => maps:get(notify_smtp_password, S)}
        end,
    CaFile =
        case maps:get(notify_ca_file, S) of
            <<>> -> #{};
            Path -> #{ca_file => Path}
        end,
    maps:merge(
        #{
            server => maps:get(notify_smtp_server, S),
            port => maps:get(notify_smtp_port, S),
            tls => binary_to_atom(maps:get(notify_smtp_tls, S)),
            tls_verify => maps:get(notify_tls_verify, S),
            from => maps:get(notify_from, S),
            to => maps:get(notify_to, S),
            timeout_ms => TimeoutMs
        },
        maps:merge(Auth, CaFile)
    ).
