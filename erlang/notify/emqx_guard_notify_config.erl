%% @doc Notification settings: every `notify_*' key, its type, default and validation, the rules
%% between keys, and when to send.
%%
%% The keys live in the plugin's settings map next to the backup settings (and are persisted
%% with them by `emqx_guard_settings'). Each channel declares its own keys with a type
%% (`emqx_guard_channel:settings/0'); the shared ones are declared here: `notify_tls_verify'
%% (check server certificates, true) and `notify_ca_file' (extra trusted CA PEM file) for SMTP
%% and every https channel, `notify_on_failure' (true), `notify_on_success' (false),
%% `notify_dead_man' (true), `notify_on_offsite_failed' (true: an off-site copy failed) and
%% `notify_on_offsite_ok' (true: off-site copies work again after a failure), and
%% `notify_http_hosts' (hosts a chat channel may reach over plain http besides 127.0.0.1 and ::1;
%% empty by default).
%%
%% The rules between keys (`problems/1', `check/1') keep every channel whole: no signing
%% secret, mobile list, Slack token or channel, or SMTP password without the URL, token or user
%% it belongs to.
%%
%% Each value is checked as its type says (`emqx_guard_value', the generic value types). Secrets
%% are never shown: the types `password', `secret', `url' and `any_url' are what
%% `emqx_guard_redact' hides before anything is printed, logged or returned.
-module(emqx_guard_notify_config).

-export([
    keys/0,
    defaults/0,
    specs/0,
    of_settings/1,
    validate/2,
    check/1,
    problems/1,
    url_allowed/2,
    to_config/1,
    wants/2
]).

-type key() :: atom().
-type settings() :: #{key() => term()}.
-export_type([key/0, settings/0]).

%% @doc Every notification key, in display order.
-spec keys() -> [key()].
keys() ->
    [K || {K, _, _} <- specs()].

%% @doc The defaults: nothing is sent until a channel is set up.
-spec defaults() -> settings().
defaults() ->
    maps:from_list([{K, D} || {K, _, D} <- specs()]).

%% @doc Every key with its type and default: e-mail, webhook, the shared keys, the chat channels.
-spec specs() -> [emqx_guard_channel:setting()].
specs() ->
    Channel = fun(Kind) -> (emqx_guard_channel:module(Kind)):settings() end,
    Channel(email) ++ Channel(webhook) ++
        [
            {notify_tls_verify, bool, true},
            {notify_ca_file, path, <<>>},
            {notify_on_failure, bool, true},
            {notify_on_success, bool, false},
            {notify_dead_man, bool, true},
            {notify_on_offsite_failed, bool, true},
            {notify_on_offsite_ok, bool, true}
        ] ++
        lists:append([Channel(K) || K <- emqx_guard_channel:kinds(), K =/= email, K =/= webhook]) ++
        [{notify_http_hosts, hosts, []}].

%% @doc The notification settings found in a (possibly older) settings map, defaults for the rest.
-spec of_settings(map()) -> settings().
of_settings(Settings) when is_map(Settings) ->
    maps:merge(defaults(), maps:with(keys(), Settings)).

%% @doc Validates one setting given as text (binary or charlist), or as its stored type.
%% Returns the stored value or why not (`emqx_guard_value:check/3'; never the secret itself).
-spec validate(key(), term()) -> {ok, term()} | {error, emqx_guard_settings:error()}.
validate(Key, Raw) ->
    case lists:keyfind(Key, 1, specs()) of
        {Key, Type, _} ->
            emqx_guard_value:check(Type, atom_to_binary(Key), Raw);
        false ->
            {error, {unknown_setting, Key}}
    end.

%% @doc The rules between keys, for complete settings: the first of `problems/1', or `ok'.
-spec check(map()) -> ok | {error, {broken_rule, binary()}}.
check(Settings) ->
    case problems(Settings) of
        [{_Keys, Line} | _] -> {error, {broken_rule, Line}};
        [] -> ok
    end.

%% @doc Every rule between keys the settings break, each with the keys it is about and the one
%% line that says it: a chat webhook over plain http only to an allowed host (`url_allowed/2');
%% and every channel whole: a secret, signing key, mobile list, Slack channel or token, or SMTP
%% password is refused without the URL, token or user it belongs to (`needs/0'), so no change
%% leaves half a channel. `emqx_guard_settings:change/1' refuses a change that breaks a rule
%% about a key it touches.
-spec problems(map()) -> [{[key()], binary()}].
problems(Settings) ->
    S = of_settings(Settings),
    Urls = [{K, maps:get(K, S)} || {K, url, _} <- specs(), maps:get(K, S) =/= <<>>],
    [{[K, notify_http_hosts], Line} || {K, U} <- Urls, {error, {broken_rule, Line}} <- [url_allowed(U, S)]] ++
        [
            {[K, Needed], unicode:characters_to_binary([atom_to_binary(K), " needs ", atom_to_binary(Needed), " (", Hint, ")"])}
         || {K, Needed, Hint} <- needs(), is_set(maps:get(K, S)), not is_set(maps:get(Needed, S))
        ].

%% What each part of a channel belongs to: a value of the first key is half a channel while the
%% second is empty (the hint is the `guard notify_<channel>' argument that sets it).
needs() ->
    [
        {notify_smtp_password, notify_smtp_user, "user=..."},
        {notify_slack_token, notify_slack_channel, "channel=C..."},
        {notify_slack_channel, notify_slack_token, "token=xoxb-..."},
        {notify_feishu_secret, notify_feishu_url, "url=https://..."},
        {notify_dingtalk_secret, notify_dingtalk_url, "url=https://..."},
        {notify_dingtalk_at_mobiles, notify_dingtalk_url, "url=https://..."}
    ].

is_set(V) ->
    V =/= <<>> andalso V =/= [].

%% @doc Whether a chat channel may POST to Url: https always; plain http only to 127.0.0.1, ::1
%% and the hosts the operator listed in `notify_http_hosts'.
-spec url_allowed(binary(), map()) -> ok | {error, {broken_rule, binary()}}.
url_allowed(Url, Settings) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} ->
            Allowed = [string:lowercase(H) || H <- maps:get(notify_http_hosts, of_settings(Settings))],
            case {string:lowercase(Scheme), string:lowercase(Host)} of
                {<<"https">>, _} -> ok;
                {<<"http">>, H} when H =:= <<"127.0.0.1">>; H =:= <<"::1">> -> ok;
                {<<"http">>, H} ->
                    case lists:member(H, Allowed) of
                        true -> ok;
                        false -> rule(<<(emqx_guard_redact:url(Url))/binary, " is plain http: use https, or list the host in notify_http_hosts">>)
                    end;
                _ ->
                    rule(<<(emqx_guard_redact:url(Url))/binary, " is not an https URL">>)
            end;
        _ ->
            rule(<<"not a URL">>)
    end.

rule(Line) ->
    {error, {broken_rule, Line}}.

%% @doc The notification settings as plugin config (binary keys; lists comma-separated).
-spec to_config(map()) -> #{binary() => binary() | integer() | boolean()}.
to_config(Settings) ->
    S = of_settings(Settings),
    maps:from_list([{atom_to_binary(K), config_value(maps:get(K, S))} || K <- keys()]).

config_value(L) when is_list(L) -> iolist_to_binary(lists:join(<<", ">>, L));
config_value(V) -> V.

%% @doc Whether Event is to be sent at all under these settings (a test always is).
-spec wants(emqx_guard_notify_format:event(), map()) -> boolean().
wants(Event, Settings) ->
    S = of_settings(Settings),
    case Event of
        backup_ok -> maps:get(notify_on_success, S);
        backup_failed -> maps:get(notify_on_failure, S);
        dead_man -> maps:get(notify_dead_man, S);
        offsite_failed -> maps:get(notify_on_offsite_failed, S);
        offsite_ok -> maps:get(notify_on_offsite_ok, S);
        %% a restore is typed by an operator: its end is always told, a failure as a failure
        restore_failed -> maps:get(notify_on_failure, S);
        restore_done -> true;
        test -> true
    end.

