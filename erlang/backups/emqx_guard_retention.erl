%% @doc Retention's rules as the settings hold them, turned into what the core's decision takes.
%%
%% A policy is restic's `forget' rules written as one line (`last=3 daily=7 weekly=4 within=2d';
%% a bare `5' is `last=5'); the core parses it (`emqx_guard_core:retention_policy/1') and makes the
%% one decision, for every backup the rule(s) that keep it or `delete' (`guard_core::retention::
%% plan'), for the real prune and the dry run alike, here and off-site:
%% <ul>
%% <li>`backup_keep': the policy of this node's backups. Stored as the integer N when it is
%%     `last=N' alone (the form every release reads, so a node of 0.1.0 takes it), else as the
%%     canonical text.</li>
%% <li>`backup_remote_keep': the policy of the off-site copies, or `local' (the default): the
%%     same as `backup_keep'.</li>
%% <li>`backup_pins': the export names never deleted by retention, on any node or off-site (a
%%     setting, so they are saved with a format version and reach every node as settings do).</li>
%% <li>`backup_timezone': the zone whose calendar hours, days, ISO weeks, months and years the
%%     rules count.</li>
%% </ul>
%% When each backup was made is its run's recorded start where the verification records hold it
%% (`made_at', see `emqx_guard_verifications'), else the time in its export name.
-module(emqx_guard_retention).

-export([local/1, remote/1, text/1, remote_text/1, count/1, stored/1]).
-export([validate/2, validate_remote/1, validate_pins/1]).

-export_type([stored/0, rules/0]).

%% How `backup_keep' (and a `backup_remote_keep' other than `local') is stored.
-type stored() :: pos_integer() | binary().
%% What `prune_async/6' and `offsite_prune_async/4' take (`emqx_guard_nif').
-type rules() :: #{
    policy := binary(),
    zone := binary(),
    pins := [binary()],
    made := #{binary() => integer()},
    now := integer()
}.

%% @doc The rules of this node's backups under Settings.
-spec local(emqx_guard_settings:settings()) -> rules().
local(Settings) ->
    rules(text(maps:get(backup_keep, Settings)), Settings).

%% @doc The rules of the off-site copies under Settings (`backup_remote_keep', or the local
%% policy when it is `local').
-spec remote(emqx_guard_settings:settings()) -> rules().
remote(Settings) ->
    rules(remote_text(Settings), Settings).

rules(Policy, Settings) ->
    #{
        policy => Policy,
        zone => maps:get(backup_timezone, Settings),
        %% the pins, and the safety backups of restores until a later good backup replaced them
        pins => lists:usort(maps:get(backup_pins, Settings, []) ++ emqx_guard_restore_state:held()),
        made => made(),
        now => os:system_time(millisecond)
    }.

%% The recorded run start of each backup that has one.
made() ->
    maps:from_list([{N, At} || #{name := N, made_at := At} <- emqx_guard_verifications:records(), is_integer(At)]).

%% @doc A stored policy as its text: `5' is `last=5'.
-spec text(stored()) -> binary().
text(N) when is_integer(N) -> <<"last=", (integer_to_binary(N))/binary>>;
text(Text) when is_binary(Text) -> Text.

%% @doc The off-site policy's text under Settings.
-spec remote_text(emqx_guard_settings:settings()) -> binary().
remote_text(Settings) ->
    case maps:get(backup_remote_keep, Settings, local) of
        local -> text(maps:get(backup_keep, Settings));
        Stored -> text(Stored)
    end.

%% @doc How many backups a policy keeps at least when there are enough of them: its largest
%% count (1 when it has only `within'). What copies to other nodes and the off-site fill-in take
%% as "the newest", and how many uploads of its own a node needs in the bucket before remote
%% retention may touch what it did not upload (`emqx_guard_offsite:retention/4').
-spec count(stored()) -> pos_integer().
count(N) when is_integer(N) ->
    max(1, N);
count(Text) ->
    case emqx_guard_core:retention_policy(Text) of
        {ok, Policy} -> max(1, lists:max([maps:get(K, Policy) || K <- [last, hourly, daily, weekly, monthly, yearly]]));
        {error, _} -> 1
    end.

%% @doc A policy as it is stored, from the core's parse of it: the integer N for `last=N' alone,
%% else the canonical text.
-spec stored(emqx_guard_nif:policy()) -> stored().
stored(#{text := Text, last := Last}) ->
    case text(Last) of
        Text -> Last;
        _ -> Text
    end.

%%--------------------------------------------------------------------------------------------
%% The settings
%%--------------------------------------------------------------------------------------------

%% @doc Validates the policy of the setting named Key (`<<"backup_keep">>'), given as text or as
%% its stored form: the stored form (which validates again to itself), or
%% `{invalid_value, Line}' with the core's one line saying what is wrong and what to write.
-spec validate(binary(), term()) -> {ok, stored()} | {error, {invalid_value, binary()}}.
validate(Key, N) when is_integer(N) ->
    validate(Key, integer_to_binary(N));
validate(Key, Raw) ->
    case emqx_guard_value:text(Raw) of
        {ok, Text} ->
            case emqx_guard_core:retention_policy(Text) of
                {ok, Policy} -> {ok, stored(Policy)};
                {error, {_Reason, Line}} -> {error, {invalid_value, <<Key/binary, ": ", Line/binary>>}}
            end;
        error ->
            {error, {invalid_value, <<Key/binary, " must be text such as last=5 daily=7">>}}
    end.

%% @doc Validates `backup_remote_keep': `local' (any case; the local policy), or a policy as
%% `validate/2'.
-spec validate_remote(term()) -> {ok, local | stored()} | {error, {invalid_value, binary()}}.
validate_remote(local) ->
    {ok, local};
validate_remote(Raw) ->
    case emqx_guard_value:text(Raw) of
        {ok, Text} ->
            case string:lowercase(string:trim(Text)) of
                <<"local">> -> {ok, local};
                _ -> validate(<<"backup_remote_keep">>, Text)
            end;
        error ->
            validate(<<"backup_remote_keep">>, Raw)
    end.

%% @doc Validates `backup_pins': export names, as a list of texts or as one text separated by
%% spaces or commas. Stored sorted, each once, as binaries.
-spec validate_pins(term()) -> {ok, [binary()]} | {error, {invalid_value, binary()}}.
validate_pins(Raw) ->
    Names =
        case is_list(Raw) andalso lists:all(fun(E) -> is_binary(E) orelse is_list(E) end, Raw) of
            true ->
                Texts = [emqx_guard_value:text(E) || E <- Raw],
                case [T || {ok, T} <- Texts] of
                    Good when length(Good) =:= length(Raw) -> {ok, [string:trim(T) || T <- Good]};
                    _ -> error
                end;
            false ->
                case emqx_guard_value:text(Raw) of
                    {ok, Text} -> {ok, string:lexemes(Text, [$\s, $\t, $\n, $,])};
                    error -> error
                end
        end,
    case Names of
        {ok, List} ->
            case [N || N <- List, not emqx_guard_core:is_export_name(N)] of
                [] ->
                    {ok, lists:usort(List)};
                [Bad | _] ->
                    {error, {invalid_value, iolist_to_binary(io_lib:format(
                        "backup_pins: ~0tp is not an export name (emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz)", [Bad]))}}
            end;
        error ->
            {error, {invalid_value, <<"backup_pins must be a list of export names">>}}
    end.
