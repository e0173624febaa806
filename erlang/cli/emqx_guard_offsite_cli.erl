%% @doc The `emqx ctl guard' commands about off-site copies: `backup_remote' (show, set, off),
%% `backup_list --remote', `backup_fetch <name> [identity=<path>]', `backup_remote_prune
%% --confirm' (remote retention may delete what this node did not upload), the remote part of
%% `backup_prune --dry-run' (`prune_dry_run/0', called by `emqx_guard_backups_cli') and the
%% off-site lines of `backup_status' (`status_lines/0': the queue's state and last results).
%% Parses and prints only; the secret key is never printed (`emqx_guard_redact:settings/1').
-module(emqx_guard_offsite_cli).

-import(emqx_guard_cli, [line/1, error_line/1, error_reason/1]).

-export([cmd/1, usage_lines/0, prune_dry_run/0, status_lines/0]).

%% A listing, a dry run or a fetch: the NIF bounds every request; this bounds the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).
%% `name=' of `backup_remote s3' and the setting each one sets.
-define(NAMES, [
    {<<"bucket">>, backup_remote_bucket},
    {<<"prefix">>, backup_remote_prefix},
    {<<"region">>, backup_remote_region},
    {<<"endpoint">>, backup_remote_endpoint},
    {<<"access_key">>, backup_remote_access_key},
    {<<"secret_key">>, backup_remote_secret_key},
    {<<"path_style">>, backup_remote_path_style},
    {<<"tls_verify">>, backup_remote_tls_verify},
    {<<"ca_file">>, backup_remote_ca_file},
    {<<"recipient">>, backup_remote_recipient},
    {<<"concurrency">>, backup_remote_concurrency}
]).

%% @doc The usage lines of these commands, in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_remote [s3 key=value ... | off]",
            "Show or set where every verified backup is also copied: s3 bucket= access_key= secret_key= [prefix= region= "
            "endpoint= path_style=on tls_verify=on|off ca_file= recipient=age1... concurrency=4] (age-encrypted with a "
            "recipient; concurrency: parts in flight at once)"},
        {"guard backup_list --remote", "List the off-site backups, newest first, with size, time and encryption"},
        {"guard backup_fetch <name> [identity=<file>]",
            "Download an off-site backup into data/backup, decrypt and verify it, ready for 'emqx ctl data import'"},
        {"guard backup_remote_prune --confirm",
            "Let remote retention delete off-site backups this node did not upload (kept after a rebuild until then)"}
    ].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_remote">>]) -> show();
cmd([<<"backup_remote">>, <<"off">>]) -> set(emqx_guard_offsite_config:defaults());
cmd([<<"backup_remote">>, <<"s3">> | Pairs]) -> set_s3(Pairs);
cmd([<<"backup_remote">> | _]) -> error_line("expected backup_remote, backup_remote off or backup_remote s3 key=value ...");
cmd([<<"backup_list">>, <<"--remote">>]) -> list_remote();
cmd([<<"backup_fetch">>, Name]) -> fetch(Name, undefined);
cmd([<<"backup_fetch">>, Name, <<"identity=", Path/binary>>]) when Path =/= <<>> -> fetch(Name, Path);
cmd([<<"backup_fetch">> | _]) -> error_line("expected backup_fetch <name> [identity=<age identity file>]");
cmd([<<"backup_remote_prune">>, <<"--confirm">>]) -> confirm_prune();
cmd([<<"backup_remote_prune">> | _]) ->
    error_line(
        "expected backup_remote_prune --confirm: it lets remote retention delete off-site backups this node did not "
        "upload (guard backup_prune --dry-run shows which)"
    );
cmd(_) -> not_mine.

%%--------------------------------------------------------------------
%% backup_remote
%%--------------------------------------------------------------------

show() ->
    S = emqx_guard_redact:settings(emqx_guard_settings:get()),
    case emqx_guard_offsite_config:enabled(S) of
        false ->
            line("backup_remote = off (backups stay on this cluster's disks only)");
        true ->
            line("backup_remote = s3"),
            lists:foreach(
                fun({Name, Key}) -> line(["  ", Name, " = ", value_text(maps:get(Key, S))]) end,
                ?NAMES
            ),
            case maps:get(backup_remote_recipient, S) of
                <<>> -> line("  (no recipient: backups are uploaded unencrypted)");
                _ -> line("  (uploads are encrypted with age for the recipient; objects are named <export>.age)")
            end
    end.

value_text(true) -> <<"on">>;
value_text(false) -> <<"off">>;
value_text(V) when is_integer(V) -> integer_to_list(V);
value_text(V) when is_binary(V) -> [$", V, $"].

%% Every key not given goes back to its default: the destination is set as a whole.
set_s3(Pairs) ->
    case changes(Pairs, #{}) of
        {ok, Changes} -> set(maps:merge(emqx_guard_offsite_config:defaults(), Changes#{backup_remote_type => <<"s3">>}));
        {error, Why} -> error_reason(Why)
    end.

changes([], Acc) ->
    {ok, Acc};
changes([Pair | Rest], Acc) ->
    case binary:split(Pair, <<"=">>) of
        [Name, Value] ->
            case lists:keyfind(Name, 1, ?NAMES) of
                {Name, Key} ->
                    changes(Rest, Acc#{Key => Value});
                false ->
                    Known = lists:join(", ", [N || {N, _} <- ?NAMES]),
                    emqx_guard_cli:bad_argument(["unknown key \"", hd(emqx_guard_redact:args([Name])), "\" (use ", Known, ")"])
            end;
        _ ->
            emqx_guard_cli:bad_argument(["expected key=value, got \"", hd(emqx_guard_redact:args([Pair])), "\""])
    end.

set(Changes) ->
    case emqx_guard_settings_sync:update(Changes) of
        {ok, _New, Unreached} ->
            show(),
            lists:foreach(fun({Node, Why}) -> line(["Warning: not applied on ", atom_to_binary(Node), ": ", Why]) end, Unreached);
        {error, Why} ->
            error_reason(Why)
    end.

%%--------------------------------------------------------------------
%% backup_list --remote, backup_prune --dry-run (remote part)
%%--------------------------------------------------------------------

list_remote() ->
    with_config(fun(Config) ->
        #{backup_timezone := Zone} = emqx_guard_settings:get(),
        case job(emqx_guard_core:offsite_list_async(Config, #{})) of
            {ok, []} ->
                line(["No off-site backups in ", where(Config)]);
            {ok, Remote} ->
                line(text("~B off-site backup(s) in ~ts, newest first:", [length(Remote), where(Config)])),
                lists:foreach(fun(R) -> line(remote_line(Zone, R)) end, Remote);
            {error, {_, Detail}} ->
                error_line(Detail)
        end
    end).

%% @doc The remote part of `guard backup_prune --dry-run': what remote retention would delete
%% now (nothing when no remote destination is set).
-spec prune_dry_run() -> ok.
prune_dry_run() ->
    S = emqx_guard_settings:get(),
    case emqx_guard_offsite_config:to_nif(S) of
        off ->
            ok;
        {ok, Config} ->
            #{backup_keep := Keep, backup_timezone := Zone} = S,
            case job(emqx_guard_core:offsite_prune_async(Config, Keep, true, #{})) of
                {ok, #{deleted := []}} ->
                    line(text("Nothing to delete off-site: remote retention keeps the newest ~B in ~ts", [Keep, where(Config)]));
                {ok, #{deleted := Doomed, kept := Kept}} ->
                    #{own := Own, confirmed := Confirmed} = emqx_guard_offsite_queue:retention_guard(),
                    There = [E || #{export_name := E} <- Kept ++ Doomed],
                    case emqx_guard_offsite:retention(There, Own, Keep, Confirmed) of
                        ok ->
                            line(text("Remote retention (keep the newest ~B) would delete ~B off-site backup(s) from ~ts "
                                      "(dry run, nothing deleted):", [Keep, length(Doomed), where(Config)]));
                        Paused ->
                            line(["Nothing to delete off-site: remote retention is ", emqx_guard_offsite:retention_line(Paused)]),
                            line(text("After guard backup_remote_prune --confirm it would delete ~B off-site backup(s) from ~ts:",
                                      [length(Doomed), where(Config)]))
                    end,
                    lists:foreach(fun(R) -> line(remote_line(Zone, R)) end, Doomed);
                {error, {_, Detail}} ->
                    error_line(["off-site: ", Detail])
            end
    end.

%% @doc The off-site lines of `guard backup_status': where copies go, then the queue
%% (`emqx_guard_offsite_queue:status/0'): what it uploads now and what waits, the upload of the
%% newest backup off-site (what, when, how long, how big), the last error, and remote retention
%% when it is paused;
%% none while no remote destination is set.
-spec status_lines() -> [binary()].
status_lines() ->
    S = emqx_guard_settings:get(),
    case emqx_guard_offsite_config:to_nif(S) of
        off ->
            [];
        {ok, Config} ->
            Enc =
                case maps:get(backup_remote_recipient, S) of
                    <<>> -> <<"not encrypted">>;
                    _ -> <<"encrypted with age">>
                end,
            Head = text("off-site: ~ts (~ts)", [where(Config), Enc]),
            case emqx_guard_offsite_queue:status() of
                undefined -> [Head, <<"  uploads: the off-site queue is not running">>];
                Q -> [Head | queue_lines(maps:get(backup_timezone, S), Q)]
            end
    end.

queue_lines(Zone, #{running := Running, waiting := Waiting, retry_at := RetryAt, state := State}) ->
    At = fun(Ms) -> emqx_guard_render:in_zone(Zone, Ms) end,
    More =
        case Waiting of
            [] -> <<>>;
            [W] -> text("; waiting: ~ts", [W])
        end,
    Now =
        case {Running, RetryAt} of
            {#{kind := check, started_at := S}, _} ->
                text("  uploads: looking at the bucket (since ~ts)~ts", [At(S), More]);
            {#{file := undefined, started_at := S}, _} ->
                text("  uploads: uploading what is missing, then remote retention (since ~ts)~ts", [At(S), More]);
            {#{file := F, started_at := S}, _} ->
                text("  uploads: uploading ~ts (since ~ts)~ts", [F, At(S), More]);
            {undefined, undefined} when Waiting =:= [] ->
                <<"  uploads: none waiting">>;
            {undefined, undefined} ->
                text("  uploads: none running~ts", [More]);
            {undefined, _} ->
                text("  uploads: tried again at ~ts~ts", [At(RetryAt), More])
        end,
    Last =
        case maps:get(last_upload, State) of
            undefined ->
                [];
            #{at := UAt, name := Name, duration_ms := D, bytes := B, reused := Reused} ->
                [text("  newest backup off-site: ~ts, uploaded at ~ts, took ~ts, ~ts~ts", [
                    Name, At(UAt), emqx_guard_render:duration_ms(D), emqx_guard_render:size(B),
                    case Reused of
                        true -> <<" (already there with the same SHA-256: not sent again)">>;
                        false -> <<>>
                    end
                ])]
        end,
    Error =
        case {maps:get(last_error, State), maps:get(failing, State)} of
            {undefined, _} -> [];
            {#{at := EAt, error := E}, true} -> [text("  last error: ~ts: ~ts", [At(EAt), E])];
            {#{at := EAt, error := E}, false} -> [text("  last error: ~ts: ~ts (the copies since then succeeded)", [At(EAt), E])]
        end,
    Retention =
        case maps:get(retention, State) of
            #{paused := _} = Paused -> [<<"  remote retention: ", (emqx_guard_offsite:retention_line(Paused))/binary>>];
            _ -> []
        end,
    [Now] ++ Last ++ Error ++ Retention.

%%--------------------------------------------------------------------
%% backup_remote_prune --confirm
%%--------------------------------------------------------------------

confirm_prune() ->
    case emqx_guard_offsite_queue:confirm_retention() of
        {ok, Where} ->
            #{backup_keep := Keep} = emqx_guard_settings:get(),
            line(text("Remote retention now applies to every backup in ~ts: it keeps the newest ~B there, whoever "
                      "uploaded them. It runs now, in the background (guard backup_status shows it).", [Where, Keep]));
        {error, Why} ->
            error_reason(Why)
    end.

remote_line(Zone, #{name := Name, size := Size, mtime := MTime, encrypted := Encrypted}) ->
    Enc =
        case Encrypted of
            true -> <<"encrypted (age)">>;
            false -> <<"not encrypted">>
        end,
    iolist_to_binary(["  ", lists:join("  ", [Name, emqx_guard_render:size(Size), emqx_guard_render:in_zone(Zone, MTime), Enc])]).

where(Config) ->
    emqx_guard_offsite:where(Config).

%%--------------------------------------------------------------------
%% backup_fetch
%%--------------------------------------------------------------------

fetch(Name, Identity) ->
    with_config(fun(Config) ->
        Dir = emqx_guard_emqx:backup_dir(),
        _ = filelib:ensure_dir(filename:join(Dir, "x")),
        case job(emqx_guard_core:offsite_fetch_async(Config, Name, Identity, Dir, #{})) of
            {ok, #{name := File, path := Path, size := Size, encrypted := Encrypted, verified := V} = Got} ->
                line(text("Fetched ~ts from ~ts into ~ts (~ts~ts)", [
                    File, where(Config), Path, emqx_guard_render:size(Size),
                    case Encrypted of
                        true -> <<", decrypted">>;
                        false -> <<>>
                    end
                ])),
                %% the checks the backup passed: an object without checksum metadata has fewer
                line(text("  verified: EMQX ~ts ~ts export, ~B entries, sha256 ~ts (checks: ~ts)", [
                    maps:get(version, V), maps:get(edition, V), maps:get(entries, V), maps:get(sha256, V),
                    lists:join(", ", [atom_to_list(C) || C <- maps:get(checked_by, Got, [])])
                ])),
                line(["Restore it with: emqx ctl data import ", File]);
            {error, {Reason, Detail}} ->
                error_line([fetch_hint(Reason), Detail])
        end
    end).

fetch_hint(exists) -> "a backup of that name is already in data/backup (nothing overwritten): ";
fetch_hint(decrypt) -> "cannot decrypt (give the identity of the recipient with identity=<file>): ";
fetch_hint(not_found) -> "no such off-site backup (see guard backup_list --remote): ";
fetch_hint(_) -> "".

%%--------------------------------------------------------------------

with_config(Fun) ->
    case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
        off -> error_reason({no_destination, off});
        {ok, Config} -> Fun(Config)
    end.

job({ok, Job}) -> emqx_guard_core:await(Job, ?AWAIT_MS);
job({error, _} = Error) -> Error.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
