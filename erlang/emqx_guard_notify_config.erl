%% @doc Notification settings: keys, defaults, validation, and what they mean for a send.
%%
%% The keys live in the plugin's settings map next to the backup settings (and are persisted
%% with them by `emqx_guard_settings'):
%% <ul>
%% <li>`notify_smtp_server' (binary; empty = no e-mail), `notify_smtp_port' (1..65535, 587),
%%     `notify_smtp_tls' (`<<"none">>' | `<<"starttls">>' | `<<"tls">>', starttls),
%%     `notify_smtp_user', `notify_smtp_password' (binaries, empty = no AUTH),
%%     `notify_from' (sender address), `notify_to' (list of recipient addresses);</li>
%% <li>`notify_webhook_url' (http or https URL; empty = no webhook);</li>
%% <li>`notify_tls_verify' (check server certificates, true), `notify_ca_file' (extra trusted CA
%%     PEM file, empty = system roots only), both for SMTP and the webhook;</li>
%% <li>`notify_on_failure' (true), `notify_on_success' (false), `notify_dead_man' (true).</li>
%% </ul>
%% The password is never shown: `redacted/1' replaces it before anything is printed or logged,
%% and a webhook URL is shown as scheme, host and port only (its path or query often is the
%% secret: Slack's path, DingTalk's `access_token='). This module is the one place for that:
%% `redacted/1' for a settings map, `redacted_term/1' for any term holding settings maps (process
%% state, messages), `redacted_args/1' for command-line arguments.
-module(emqx_guard_notify_config).

-export([
    keys/0,
    defaults/0,
    of_settings/1,
    validate/2,
    to_config/1,
    email_enabled/1,
    webhook_enabled/1,
    wants/2,
    smtp_config/2,
    redacted/1,
    redacted_term/1,
    redacted_status/1,
    redacted_args/1,
    redacted_url/1,
    parse_bool/1
]).

-type key() ::
    notify_smtp_server
    | notify_smtp_port
    | notify_smtp_tls
    | notify_smtp_user
    | notify_smtp_password
    | notify_from
    | notify_to
    | notify_webhook_url
    | notify_tls_verify
    | notify_ca_file
    | notify_on_failure
    | notify_on_success
    | notify_dead_man.
-type settings() :: #{key() => term()}.
-export_type([key/0, settings/0]).

-define(REDACTED, <<"******">>).
%% U+2026 HORIZONTAL ELLIPSIS: stands for the hidden part of a URL.
-define(ELLIPSIS, 16#2026).

%% @doc Every notification key, in display order.
-spec keys() -> [key()].
keys() ->
    [
        notify_smtp_server,
        notify_smtp_port,
        notify_smtp_tls,
        notify_smtp_user,
        notify_smtp_password,
        notify_from,
        notify_to,
        notify_webhook_url,
        notify_tls_verify,
        notify_ca_file,
        notify_on_failure,
        notify_on_success,
        notify_dead_man
    ].

%% @doc The defaults: nothing is sent until a server and a recipient (or a webhook) are set.
-spec defaults() -> settings().
defaults() ->
    #{
        notify_smtp_server => <<>>,
        notify_smtp_port => 587,
        notify_smtp_tls => <<"starttls">>,
        notify_smtp_user => <<>>,
        notify_smtp_password => <<>>,
        notify_from => <<>>,
        notify_to => [],
        notify_webhook_url => <<>>,
        notify_tls_verify => true,
        notify_ca_file => <<>>,
        notify_on_failure => true,
        notify_on_success => false,
        notify_dead_man => true
    }.

%% @doc The notification settings found in a (possibly older) settings map, defaults for the rest.
-spec of_settings(map()) -> settings().
of_settings(Settings) when is_map(Settings) ->
    maps:merge(defaults(), maps:with(keys(), Settings)).

%% @doc Validates one setting given as text (binary or charlist), or as its stored type.
%% Returns the stored value or one sentence saying what is wrong.
-spec validate(key(), term()) -> {ok, term()} | {error, binary()}.
validate(Key, Raw) ->
    try
        check(Key, Raw)
    catch
        throw:{invalid, Line} -> {error, Line}
    end.

check(notify_smtp_server, Raw) ->
    T = trimmed(Raw, notify_smtp_server),
    case T =:= <<>> orelse no_space(T) of
        true -> {ok, T};
        false -> invalid("notify_smtp_server must be a host name or address without spaces")
    end;
check(notify_smtp_port, P) when is_integer(P), P >= 1, P =< 65535 ->
    {ok, P};
check(notify_smtp_port, Raw) when not is_integer(Raw) ->
    T = trimmed(Raw, notify_smtp_port),
    case string:to_integer(T) of
        {P, <<>>} when is_integer(P) -> check(notify_smtp_port, P);
        _ -> invalid(["notify_smtp_port must be a number from 1 to 65535, not \"", T, "\""])
    end;
check(notify_smtp_port, P) ->
    invalid(io_lib:format("notify_smtp_port must be a number from 1 to 65535, not ~p", [P]));
check(notify_smtp_tls, A) when is_atom(A) ->
    check(notify_smtp_tls, atom_to_binary(A));
check(notify_smtp_tls, Raw) ->
    case string:lowercase(trimmed(Raw, notify_smtp_tls)) of
        M when M =:= <<"none">>; M =:= <<"starttls">>; M =:= <<"tls">> -> {ok, M};
        M -> invalid(["notify_smtp_tls must be none, starttls or tls, not \"", M, "\""])
    end;
check(notify_smtp_user, Raw) ->
    {ok, trimmed(Raw, notify_smtp_user)};
check(notify_smtp_password, Raw) ->
    %% Not trimmed: a password may start or end with a space. Never echoed in an error.
    case to_bin(Raw) of
        {ok, B} -> {ok, B};
        error -> invalid("notify_smtp_password must be text")
    end;
check(notify_from, Raw) ->
    T = no_control(trimmed(Raw, notify_from), notify_from),
    case T =:= <<>> orelse looks_like_address(T) of
        true -> {ok, T};
        false -> invalid(["notify_from must be an e-mail address like guard@example.com, not \"", T, "\""])
    end;
check(notify_to, L) when is_list(L), L =/= [], not is_integer(hd(L)) ->
    addresses([no_control(trimmed(A, notify_to), notify_to) || A <- L]);
check(notify_to, Raw) ->
    T = no_control(trimmed(Raw, notify_to), notify_to),
    addresses(string:lexemes(T, ", ;"));
check(notify_webhook_url, Raw) ->
    T = trimmed(Raw, notify_webhook_url),
    case T of
        <<>> -> {ok, T};
        _ -> check_url(T)
    end;
check(notify_ca_file, Raw) ->
    {ok, trimmed(Raw, notify_ca_file)};
check(Key, Raw) when
    Key =:= notify_tls_verify;
    Key =:= notify_on_failure;
    Key =:= notify_on_success;
    Key =:= notify_dead_man
->
    case parse_bool(Raw) of
        {ok, B} -> {ok, B};
        error -> invalid([atom_to_binary(Key), " must be on or off (true or false)"])
    end;
check(Key, _Raw) ->
    invalid(io_lib:format("unknown setting ~tp", [Key])).

%% @doc `on'/`off', `true'/`false', `yes'/`no', `1'/`0' (any case) or a boolean.
-spec parse_bool(term()) -> {ok, boolean()} | error.
parse_bool(B) when is_boolean(B) -> {ok, B};
parse_bool(Raw) ->
    case to_bin(Raw) of
        {ok, T} ->
            case string:lowercase(string:trim(T)) of
                V when V =:= <<"on">>; V =:= <<"true">>; V =:= <<"yes">>; V =:= <<"1">> -> {ok, true};
                V when V =:= <<"off">>; V =:= <<"false">>; V =:= <<"no">>; V =:= <<"0">> -> {ok, false};
                _ -> error
            end;
        error ->
            error
    end.

addresses(List) ->
    case [A || A <- List, not looks_like_address(A)] of
        [] -> {ok, List};
        [Bad | _] -> invalid(["notify_to: \"", Bad, "\" is not an e-mail address"])
    end.

%% A light check (the full one happens in lettre when sending): something@something, no spaces
%% or control characters outside a display name.
looks_like_address(T) ->
    Addr =
        case re:run(T, "<([^<>]*)>\\s*$", [{capture, all_but_first, binary}, unicode]) of
            {match, [Inner]} -> Inner;
            nomatch -> T
        end,
    re:run(Addr, "^[^@\\s<>,;]+@[^@\\s<>,;]+$", [unicode]) =/= nomatch.

check_url(T) ->
    case uri_string:parse(T) of
        #{scheme := S, host := H} when H =/= <<>> ->
            case string:lowercase(S) of
                Ok when Ok =:= <<"http">>; Ok =:= <<"https">> -> {ok, T};
                _ -> invalid(["notify_webhook_url must start with http:// or https://, not \"", T, "\""])
            end;
        _ ->
            invalid(["notify_webhook_url is not a URL: \"", T, "\""])
    end.

%% @doc The notification settings as plugin config (binary keys; recipients comma-separated).
-spec to_config(map()) -> #{binary() => binary() | integer() | boolean()}.
to_config(Settings) ->
    S = of_settings(Settings),
    maps:from_list([
        {atom_to_binary(K), config_value(K, maps:get(K, S))}
     || K <- keys()
    ]).

config_value(notify_to, L) -> iolist_to_binary(lists:join(<<", ">>, L));
config_value(_, V) -> V.

%% @doc E-mail goes out when a server and at least one recipient are set.
-spec email_enabled(map()) -> boolean().
email_enabled(Settings) ->
    #{notify_smtp_server := Server, notify_to := To} = of_settings(Settings),
    Server =/= <<>> andalso To =/= [].

%% @doc The webhook is called when its URL is set.
-spec webhook_enabled(map()) -> boolean().
webhook_enabled(Settings) ->
    maps:get(notify_webhook_url, of_settings(Settings)) =/= <<>>.

%% @doc Whether Event is to be sent at all under these settings (a test always is).
-spec wants(emqx_guard_notify_format:event(), map()) -> boolean().
wants(Event, Settings) ->
    S = of_settings(Settings),
    case Event of
        backup_ok -> maps:get(notify_on_success, S);
        backup_failed -> maps:get(notify_on_failure, S);
        dead_man -> maps:get(notify_dead_man, S);
        test -> true
    end.

%% @doc The config map `emqx_guard_nif:send_mail/3' takes.
-spec smtp_config(map(), pos_integer()) -> map().
smtp_config(Settings, TimeoutMs) ->
    S = of_settings(Settings),
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

%% @doc The settings with the password replaced by `******' (or left empty when unset), and the
%% webhook URL cut to `scheme://host[:port]/…' (`redacted_url/1'): safe to print and to log.
-spec redacted(map()) -> map().
redacted(Settings) ->
    S1 =
        case maps:get(notify_smtp_password, Settings, <<>>) of
            <<>> -> Settings;
            _ -> Settings#{notify_smtp_password => ?REDACTED}
        end,
    case maps:get(notify_webhook_url, S1, <<>>) of
        <<>> -> S1;
        Url -> S1#{notify_webhook_url => redacted_url(Url)}
    end.

%% @doc Term with `redacted/1' applied to every map inside it (records, tuples, lists, map
%% values): for a process state or a message in a status or crash report.
-spec redacted_term(term()) -> term().
redacted_term(M) when is_map(M) ->
    redacted(maps:map(fun(_K, V) -> redacted_term(V) end, M));
redacted_term(T) when is_tuple(T) ->
    list_to_tuple(redacted_term(tuple_to_list(T)));
redacted_term([H | T]) ->
    [redacted_term(H) | redacted_term(T)];
redacted_term(Other) ->
    Other.

%% @doc For a gen_server's `format_status/1': the state, the last message, the sys log and the
%% crash reason with every settings map in them redacted, so neither `sys:get_status/1' nor a
%% crash report shows the password.
-spec redacted_status(gen_server:format_status()) -> gen_server:format_status().
redacted_status(Status) ->
    maps:map(
        fun
            (K, V) when K =:= state; K =:= message; K =:= log; K =:= reason -> redacted_term(V);
            (_K, V) -> V
        end,
        Status
    ).

%% @doc Command-line arguments with secrets hidden: `password=...' becomes `password=******',
%% a URL is cut as `redacted_url/1' does. Other arguments stay as they are.
-spec redacted_args(term()) -> term().
redacted_args(Args) when is_list(Args) ->
    [redacted_arg(A) || A <- Args];
redacted_args(Other) ->
    Other.

redacted_arg(A) when is_binary(A); is_list(A) ->
    Text =
        try
            to_bin(A)
        catch
            error:badarg -> error
        end,
    case Text of
        {ok, B} ->
            case string:prefix(string:lowercase(B), <<"password">>) of
                nomatch ->
                    case binary:match(B, <<"://">>) of
                        nomatch -> A;
                        _ -> redacted_url(B)
                    end;
                _ ->
                    <<"password=", ?REDACTED/binary>>
            end;
        error ->
            A
    end;
redacted_arg(A) ->
    A.

%% @doc `scheme://host[:port]/…': the URL without user info, path, query or fragment (where
%% webhook receivers put their secret). Text that is not a URL becomes `…'.
-spec redacted_url(binary()) -> binary().
redacted_url(Url) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} = U when Host =/= <<>> ->
            HostText =
                case binary:match(Host, <<":">>) of
                    nomatch -> Host;
                    _ -> <<"[", Host/binary, "]">>
                end,
            Port =
                case U of
                    #{port := P} when is_integer(P) -> [":", integer_to_binary(P)];
                    _ -> []
                end,
            unicode:characters_to_binary([Scheme, "://", HostText, Port, "/", ?ELLIPSIS]);
        _ ->
            unicode:characters_to_binary([?ELLIPSIS])
    end.

%%--------------------------------------------------------------------------------------------

trimmed(Raw, Key) ->
    case to_bin(Raw) of
        {ok, B} -> string:trim(B);
        error -> invalid([atom_to_binary(Key), " must be text"])
    end.

to_bin(B) when is_binary(B) -> {ok, B};
to_bin(A) when is_atom(A) -> {ok, atom_to_binary(A)};
to_bin(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    end;
to_bin(_) ->
    error.

%% Line breaks and other control characters would let a value add header lines to the e-mail.
no_control(T, Key) ->
    case re:run(T, "\\p{Cc}", [unicode, ucp]) of
        nomatch -> T;
        _ -> invalid([atom_to_binary(Key), " must not contain line breaks, tabs or other control characters"])
    end.

no_space(T) ->
    re:run(T, "[\\s]", [unicode]) =:= nomatch.

-spec invalid(iodata()) -> no_return().
invalid(Line) ->
    throw({invalid, unicode:characters_to_binary(Line)}).
