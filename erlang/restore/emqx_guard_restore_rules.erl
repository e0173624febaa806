%% @doc Whether this node's EMQX can import a backup, by the rules EMQX's import applies (read in
%% apps/emqx_management/src/emqx_mgmt_data_backup.erl, 5.1 to 6.3, and EMQX's changelogs):
%% <ul>
%% <li>edition: an Enterprise (`ee') backup is refused on open source (`ce'); `ce' into `ee' is
%%     fine;</li>
%% <li>version: a backup of a newer major, or of the same major and a newer minor, is refused
%%     (the patch number does not count);</li>
%% <li>an older major (5.x into 6.x): EMQX's builds from mid-2025 accept it, older ones refuse
%%     it; the preflight lets EMQX decide and says so (`notes/2');</li>
%% <li>EMQX 6.0.4, 6.1.5, 6.2.4, 6.3.1 and later also refuse an import unless every running node
%%     runs the same major.minor (`check_cluster/2', with the release each running node told);
%%     6.3.0 and later refuse, on a node of the `hardened' security profile, a backup made under
%%     `legacy' or one without a profile (made before 6.3), unless the import is told
%%     `allow_security_profile_mismatch' (EMQX's changelog, #18628); a node of `legacy' takes
%%     every backup (`check_profile/3').</li>
%% </ul>
%% Pure: the facts come in, a verdict goes out.
-module(emqx_guard_restore_rules).

-export([check/2, check_profile/3, check_cluster/2, same_minor_required/1, notes/2, major_minor/1]).

-type backup() :: #{edition := binary(), version := binary(), security_profile => binary()}.
-type release() :: #{version := binary(), edition := ce | ee} | unknown.
-type refusal() ::
    {edition_refused, #{backup := binary(), node := binary()}}
    | {newer_version, #{backup := binary(), node := binary()}}
    | {bad_version, binary()}
    | {mixed_versions, #{node := binary(), others := [{node(), binary()}]}}
    | {security_profile_mismatch, #{backup := binary(), node := binary()}}.

-export_type([refusal/0]).

%% @doc `ok' when EMQX's rules let this node (Release) import Backup, else why not.
-spec check(backup(), release()) -> ok | {error, refusal()}.
check(#{edition := <<"ee">>}, #{edition := ce, version := V}) ->
    {error, {edition_refused, #{backup => <<"ee">>, node => <<"ce ", V/binary>>}}};
check(#{version := BV}, #{version := NV}) ->
    case {major_minor(BV), major_minor(NV)} of
        {error, _} ->
            {error, {bad_version, BV}};
        {{BMa, BMi}, {NMa, NMi}} when BMa > NMa; BMa =:= NMa, BMi > NMi ->
            {error, {newer_version, #{backup => BV, node => NV}}};
        _ ->
            ok
    end;
check(_Backup, unknown) ->
    ok.

%% @doc `ok' unless EMQX (Release, 6.3 or later, whose security profile is NodeProfile) would
%% refuse Backup for its security profile: a `hardened' node refuses a backup made under
%% `legacy' or without a profile. The preflight refuses it first, before the safety backup.
-spec check_profile(backup(), release(), legacy | hardened | unknown) -> ok | {error, refusal()}.
check_profile(Backup, #{version := V}, hardened) ->
    Made = maps:get(security_profile, Backup, <<"none">>),
    case major_minor(V) of
        {Ma, Mi} when (Ma > 6 orelse (Ma =:= 6 andalso Mi >= 3)) andalso Made =/= <<"hardened">> ->
            {error, {security_profile_mismatch, #{backup => Made, node => V}}};
        _ ->
            ok
    end;
check_profile(_Backup, _Release, _NodeProfile) ->
    ok.

%% @doc Whether this EMQX (Version) imports only while every running node runs its major.minor:
%% 6.0.4, 6.1.5, 6.2.4, 6.3.1 and later (EMQX's changelogs).
-spec same_minor_required(binary()) -> boolean().
same_minor_required(Version) ->
    case {major_minor(Version), patch(Version)} of
        {{6, 0}, P} -> P >= 4;
        {{6, 1}, P} -> P >= 5;
        {{6, 2}, P} -> P >= 4;
        {{6, 3}, P} -> P >= 1;
        {{Ma, Mi}, _} when Ma > 6; Ma =:= 6, Mi > 3 -> true;
        _ -> false
    end.

%% @doc `ok' unless this node (Release) is an EMQX that imports only while every running node
%% runs its major.minor and one of Others (`{Node, Version}', the other running nodes whose
%% release is known) runs another: then EMQX would refuse the import, so the preflight does.
-spec check_cluster(release(), [{node(), binary()}]) -> ok | {error, refusal()}.
check_cluster(#{version := V}, Others) ->
    Mine = major_minor(V),
    case same_minor_required(V) andalso [{N, O} || {N, O} <- Others, major_minor(O) =/= Mine] of
        Differ when is_list(Differ), Differ =/= [] -> {error, {mixed_versions, #{node => V, others => Differ}}};
        _ -> ok
    end;
check_cluster(unknown, _Others) ->
    ok.

patch(Version) ->
    case binary:split(Version, <<".">>, [global]) of
        [_, _, P | _] ->
            case string:to_integer(P) of
                {N, _} when is_integer(N) -> N;
                _ -> 0
            end;
        _ ->
            0
    end.

%% @doc What the preflight says about the rules EMQX applies itself, for Backup on Release: one
%% line each.
-spec notes(backup(), release()) -> [binary()].
notes(Backup = #{version := BV}, Release) ->
    NV =
        case Release of
            #{version := V} -> V;
            unknown -> <<"unknown">>
        end,
    Major =
        case {major_minor(BV), major_minor(NV)} of
            {{BMa, _}, {NMa, _}} when BMa < NMa ->
                [<<"a ", BV/binary, " backup into EMQX ", NV/binary,
                   ": EMQX's builds from mid-2025 import an older major, older builds refuse it (EMQX decides)">>];
            _ ->
                []
        end,
    Same =
        case major_minor(NV) of
            {Ma, _} when Ma >= 6 ->
                [<<"EMQX 6.0.4, 6.1.5, 6.2.4, 6.3.1 and later import only when every running node runs the same "
                   "major.minor version (checked: every running node answered, or EMQX checks it itself)">>];
            _ ->
                []
        end,
    Profile =
        case maps:find(security_profile, Backup) of
            {ok, P} ->
                [<<"made under the security profile '", P/binary, "': EMQX 6.3 and later refuse a legacy backup on a "
                   "hardened node unless allow_security_profile_mismatch is set (checked)">>];
            error ->
                []
        end,
    Major ++ Same ++ Profile.

%% @doc `{Major, Minor}' of a version such as `<<"5.8.6">>' or `<<"6.0.0-rc.1">>', else `error'.
-spec major_minor(binary()) -> {non_neg_integer(), non_neg_integer()} | error.
major_minor(Version) when is_binary(Version) ->
    case binary:split(Version, <<".">>, [global]) of
        [Ma, Mi | _] ->
            case {string:to_integer(Ma), string:to_integer(Mi)} of
                {{A, <<>>}, {B, _}} when is_integer(A), is_integer(B), A >= 0, B >= 0 -> {A, B};
                _ -> error
            end;
        _ ->
            error
    end;
major_minor(_) ->
    error.
