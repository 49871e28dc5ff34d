"""Browser scenarios for the console, run by tests/console.rs against a live daemon.

Playwright drives Debian's Chromium (nothing is downloaded); each scenario asserts what a
person sees and leaves screenshots in STATFLOW_SCREENSHOTS. Usage: browser.py SCENARIO.
"""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["STATFLOW_BASE"]
SHOTS = os.environ["STATFLOW_SCREENSHOTS"]
INSTANCE = os.environ.get("STATFLOW_INSTANCE", "")

# Chromium on a closed network: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def shot(page, name):
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    print(f"screenshot {path}")


def sign_in(page, name, password):
    page.goto(f"{BASE}/login")
    page.get_by_label("用户名").fill(name)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def clerk(browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # An instance page asked for before signing in leads to the sign-in form and back.
    page.goto(f"{BASE}/instances/{INSTANCE}")
    expect(page).to_have_url(re.compile(r"/login\?next=/instances/"))
    shot(page, "login")
    page.get_by_label("用户名").fill("clerk")
    page.get_by_label("密码").fill("clerk password 1")
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{BASE}/instances/{INSTANCE}")

    # The inbox shows the new registration's task with its deadline and basis.
    page.goto(f"{BASE}/inbox")
    row = page.locator("tr[data-task]").filter(has_text="形式审查并受理登记申请")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("剩余")
    expect(row).to_contain_text("3个工作日")
    expect(row).to_contain_text("第九条")
    expect(row).to_contain_text("2026年2月")
    shot(page, "inbox")

    # Claim it: the row now says it is the clerk's.
    row.get_by_role("button", name="认领").click()
    row = page.locator("tr[data-task]").filter(has_text="形式审查并受理登记申请")
    expect(row).to_contain_text("由我办理")

    # Accept it on the instance page: a new step with its own deadline.
    row.get_by_role("link").first.click()
    expect(page.locator("#current-step")).to_have_text("登记受理")
    page.get_by_role("button", name="受理", exact=True).click()
    expect(page.locator("#current-step")).to_have_text("登记审查")

    # The review's pass needs its report: submitted empty, the error is at the field and
    # nothing changes.
    form = page.locator("form.action").filter(has=page.get_by_role("group", name="审查通过,出具合规审查报告"))
    form.get_by_role("button", name="审查通过,出具合规审查报告").click()
    expect(page.locator(".field-error")).to_have_text("此项为必填项")
    expect(page.locator("textarea[aria-invalid=true]")).to_have_count(1)
    expect(page.locator("#current-step")).to_have_text("登记审查")
    shot(page, "field-error")

    form = page.locator("form.action").filter(has=page.get_by_role("group", name="审查通过,出具合规审查报告"))
    form.locator("textarea").fill("材料齐全，符合登记要求")
    form.get_by_role("button", name="审查通过,出具合规审查报告").click()
    expect(page.locator("#current-step")).to_have_text("登记公示")
    expect(page.locator("#last-day")).to_contain_text("2026年")
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("办理：审查通过,出具合规审查报告")
    expect(timeline).to_contain_text("clerk")
    expect(timeline).to_contain_text("进入「登记公示」")
    expect(page.locator(".steps li.current")).to_have_text("登记公示")
    expect(page.locator("svg.diagram g.current")).to_have_attribute("data-step", "publicity")
    expect(page.locator("svg.diagram g.visited[data-step='acceptance']")).to_have_count(1)
    expect(page.locator(".badge-ok")).to_have_text("记录完整")
    shot(page, "instance")

    # Start a new registration from its form: a missing field is shown at the field, then
    # the instance opens on its first step; the search finds it by its resource name.
    page.goto(f"{BASE}/search")
    page.get_by_role("link", name="公共数据登记（taian）").click()
    page.get_by_label("登记类型").select_option("initial")
    page.get_by_label("登记主体").fill("taian-market")
    page.get_by_label("登记机构").fill("taian-registry")
    page.get_by_role("button", name="发起").click()
    expect(page.locator("#input-resource_name-error")).to_have_text("此项为必填项")
    expect(page.get_by_label("登记主体")).to_have_value("taian-market")
    page.get_by_label("数据资源名称").fill("不动产登记信息")
    page.get_by_role("button", name="发起").click()
    expect(page.locator("#current-step")).to_have_text("登记受理")
    started = page.url.rsplit("/", 1)[1]
    page.goto(f"{BASE}/search?text=不动产")
    expect(page.locator("tr[data-instance]")).to_have_count(1)
    expect(page.locator(f"tr[data-instance='{started}']")).to_contain_text("不动产登记信息")
    shot(page, "search")
    page.goto(f"{BASE}/search?text=企业登记信息")
    expect(page.locator(f"tr[data-instance='{INSTANCE}']")).to_have_count(1)

    # Sign out: the inbox is no longer reachable.
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(f"{BASE}/inbox")
    expect(page).to_have_url(re.compile(r"/login\?next=/inbox"))
    context.close()


def intruders(browser):
    # A staff member of another organization: the instance page and its forms answer as if
    # the instance did not exist.
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    sign_in(page, "outsider", "outsider password 1")
    expect(page).to_have_url(f"{BASE}/inbox")
    response = page.goto(f"{BASE}/instances/{INSTANCE}")
    assert response.status == 404, response.status
    unseen = page.locator("main").inner_text()
    response = page.goto(f"{BASE}/instances/99999999")
    assert response.status == 404, response.status
    absent = page.locator("main").inner_text()
    assert unseen == absent, f"an unseen instance reads like an absent one: {unseen!r} vs {absent!r}"
    expect(page.locator("main")).not_to_contain_text("登记")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    posted = page.request.post(f"{BASE}/instances/{INSTANCE}/actions/accept", form={"csrf": csrf})
    assert posted.status == 404, posted.status
    context.close()

    # The clerk's session, but a form without its CSRF token: refused.
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    sign_in(page, "clerk", "clerk password 1")
    expect(page).to_have_url(f"{BASE}/inbox")
    task = page.locator("tr[data-task]").first.get_attribute("data-task")
    forged = page.request.post(f"{BASE}/tasks/{task}/claim", form={})
    assert forged.status == 403, forged.status
    forged = page.request.post(f"{BASE}/tasks/{task}/claim", form={"csrf": "0" * 64})
    assert forged.status == 403, forged.status
    context.close()

    # A wrong password is refused; five in a row lock the name, even for the right one.
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    sign_in(page, "victim", "wrong guess 0")
    expect(page.locator("#login-error")).to_have_text("用户名或密码不正确。")
    shot(page, "login-refused")
    for attempt in range(1, 5):
        sign_in(page, "victim", f"wrong guess {attempt}")
    sign_in(page, "victim", "victim password 1")
    expect(page.locator("#login-error")).to_contain_text("登录失败次数过多")
    expect(page).to_have_url(re.compile(r"/login"))
    # The sign-in form itself carries a CSRF token: a post without it is refused.
    forged = page.request.post(f"{BASE}/login", form={"name": "clerk", "password": "clerk password 1"})
    assert forged.status == 403, forged.status
    context.close()


def reload_until(page, url, locator, text, tries=100):
    """Reloads `url` until `locator` contains `text` (background work: recomputation, delivery)."""
    for _ in range(tries):
        page.goto(url)
        if text in (page.locator(locator).first.inner_text() if page.locator(locator).count() else ""):
            return
        page.wait_for_timeout(300)
    raise AssertionError(f"{url}: {locator} never showed {text!r}")


def admin(browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, "chief", "chief password 1")
    expect(page).to_have_url(f"{BASE}/inbox")

    # The deadline runs into 2027, whose notice is not loaded: provisional.
    page.goto(f"{BASE}/instances/{INSTANCE}")
    expect(page.locator("#last-day")).to_contain_text("2027年1月1日")
    expect(page.locator("#last-day .badge-provisional")).to_have_text("暂算")

    # Import the 2027 notice from a file; the year is then official and the deadline moves
    # past the New Year holiday.
    page.goto(f"{BASE}/admin/calendar?year=2027")
    expect(page.locator("#year-provisional")).to_be_visible()
    page.set_input_files("#notice-file", os.environ["STATFLOW_NOTICE"])
    expect(page.locator("#content")).not_to_have_value("")
    expect(page.locator("#origin")).to_have_value("2027.json")
    page.get_by_role("button", name="导入").click()
    expect(page.locator("#imported")).to_contain_text("已导入 2027 年")
    expect(page.locator("#year-provisional")).to_have_count(0)
    expect(page.locator("td.day-holiday").first).to_be_visible()
    reload_until(page, f"{BASE}/admin/calendar?year=2027", "#recompute-remaining", "0")
    shot(page, "calendar")
    page.goto(f"{BASE}/instances/{INSTANCE}")
    expect(page.locator("#last-day")).to_contain_text("2027年1月4日")
    expect(page.locator("#last-day .badge-provisional")).to_have_count(0)

    # Ten days on, the registration is overdue: red on the board, and in its CSV.
    page.goto(f"{BASE}/admin/clock")
    page.get_by_label("前进时长").fill("P10D")
    page.get_by_role("button", name="前进").click()
    expect(page.locator("#clock-moved")).to_contain_text("时钟已前进到 2027年1月8日")
    page.goto(f"{BASE}/overdue")
    row = page.locator(f"tr[data-instance='{INSTANCE}']")
    expect(row).to_have_class(re.compile("row-red"))
    expect(row).to_contain_text("已超期")
    shot(page, "overdue")
    page.goto(f"{BASE}/overdue?procedure=annual_evaluation")
    expect(page.locator(f"tr[data-instance='{INSTANCE}']")).to_have_count(0)
    page.goto(f"{BASE}/overdue?procedure=registration")
    expect(page.locator(f"tr[data-instance='{INSTANCE}']")).to_have_count(1)
    exported = page.request.get(f"{BASE}/overdue.csv")
    assert exported.status == 200 and "超期" in exported.text() and INSTANCE in exported.text(), exported.text()

    # The directory shows who is told: the registry's clerk, with the address that bounces.
    page.goto(f"{BASE}/admin/directory")
    expect(page.locator("section[data-organization='taian-registry']")).to_contain_text("bounce@registry.example")
    expect(page.locator("section[data-organization='taian-registry']")).to_contain_text("taian-bureau")

    # The clerk's address bounced: the notices failed. Correct the contact, then resend.
    reload_until(page, f"{BASE}/admin/deliveries?status=failed", "table", "550")
    shot(page, "deliveries")
    page.goto(f"{BASE}/admin/directory")
    page.get_by_label("所属单位标识").fill("taian-registry")
    page.get_by_label("姓名").fill("张三")
    page.get_by_label("邮箱", exact=True).fill("not an address")
    page.get_by_label("承担角色（逗号分隔）").fill("registration_agency")
    page.get_by_role("button", name="保存联系人").click()
    expect(page.locator("#directory-error")).to_contain_text("email")
    page.get_by_label("所属单位标识").fill("taian-registry")
    page.get_by_label("姓名").fill("张三")
    page.get_by_label("邮箱", exact=True).fill("zhang@registry.example")
    page.get_by_label("承担角色（逗号分隔）").fill("registration_agency")
    page.get_by_role("button", name="保存联系人").click()
    expect(page.locator("#done")).to_have_text("已保存联系人 张三。")
    page.locator("tr[data-contact='bounce@registry.example']").get_by_role("button", name="删除").click()
    expect(page.locator("tr[data-contact='bounce@registry.example']")).to_have_count(0)
    expect(page.locator("tr[data-contact='zhang@registry.example']")).to_have_count(1)
    shot(page, "directory")
    page.goto(f"{BASE}/admin/deliveries?status=failed")
    page.get_by_role("button", name="全部重试").click()
    expect(page.locator("#retried")).to_contain_text("已重新发送")
    reload_until(page, f"{BASE}/admin/deliveries?status=done", "table", "通知")

    # A definition with mistakes is refused with each at its file and line; the current one
    # reads step by step.
    page.goto(f"{BASE}/definitions")
    page.set_input_files("#definition-file", os.environ["STATFLOW_BROKEN_DEFINITION"])
    expect(page.locator("#file")).to_have_value("unknown-references.toml")
    expect(page.locator("#source")).not_to_have_value("")
    page.get_by_role("button", name="载入").click()
    expect(page.locator("#definition-errors")).to_contain_text(re.compile(r"unknown-references\.toml:\d+: "))
    shot(page, "definition-errors")
    page.get_by_role("link", name="公共数据登记").first.click()
    expect(page.locator(".definition-steps")).to_contain_text("3个工作日（法定）")
    expect(page.locator(".definition-steps")).to_contain_text("第九条")
    expect(page.locator("svg.diagram g[data-step='publicity']")).to_have_count(1)
    expect(page.locator(".versions .badge-ok")).to_have_text("当前")

    # A new colleague gets an account; a departed one is disabled; an old system's token is revoked.
    page.goto(f"{BASE}/admin/people")
    page.get_by_label("名称").fill("lisi")
    page.get_by_label("单位（多个以逗号分隔；经办人员必填）").fill("taian-registry")
    page.get_by_label("初始密码（至少 10 个字符）").fill("short")
    page.get_by_role("button", name="创建").click()
    expect(page.locator("#people-error")).to_contain_text("at least 10")
    page.get_by_label("名称").fill("lisi")
    page.get_by_label("单位（多个以逗号分隔；经办人员必填）").fill("taian-registry")
    page.get_by_label("初始密码（至少 10 个字符）").fill("lisi password 1")
    page.get_by_role("button", name="创建").click()
    expect(page.locator("#done")).to_have_text("已创建用户 lisi。")
    page.locator("#passwd-name").select_option("lisi")
    page.get_by_label("新密码（至少 10 个字符）").fill("lisi password 2")
    page.get_by_role("button", name="重设").click()
    expect(page.locator("#done")).to_have_text("已重设 lisi 的密码，其会话已结束。")
    page.locator("tr[data-user='lisi']").get_by_role("button", name="停用").click()
    expect(page.locator("tr[data-user='lisi']")).to_contain_text("已停用")
    page.locator("tr[data-token='old-system']").get_by_role("button", name="吊销").click()
    expect(page.locator("tr[data-token='old-system']")).to_have_count(0)
    shot(page, "people")
    # The daily digest is switched off and on again from the schedules page.
    page.goto(f"{BASE}/schedules")
    digest = page.locator("tr[data-schedule='daily_digest']")
    expect(digest).to_contain_text("启用")
    digest.get_by_role("button", name="停用").click()
    expect(page.locator("tr[data-schedule='daily_digest']")).to_contain_text("停用")
    page.locator("tr[data-schedule='daily_digest']").get_by_role("button", name="启用").click()
    expect(page.locator("tr[data-schedule='daily_digest'] td").nth(4)).to_have_text("启用")
    page.locator("tr[data-schedule='daily_digest']").get_by_role("button", name="立即运行").click()
    expect(page.locator("tr[data-schedule='daily_digest'] td").nth(3)).to_contain_text("完成")
    shot(page, "schedules")
    # Each of those acts is in the audit log under the administrator's name.
    page.goto(f"{BASE}/admin/audit?principal=chief")
    for act in ["user.create", "user.passwd", "user.disable", "token.revoke", "delivery.retry", "calendar.import", "clock.move", "schedule.put", "schedule.run_now"]:
        expect(page.locator("table.audit")).to_contain_text(act)
    context.close()

    # The disabled colleague cannot sign in.
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    sign_in(page, "lisi", "lisi password 2")
    expect(page.locator("#login-error")).to_have_text("用户名或密码不正确。")
    context.close()

    # The regulator sees first what was escalated to them, and may read the instance.
    context = browser.new_context(locale="zh-CN", viewport={"width": 1024, "height": 768})
    page = context.new_page()
    sign_in(page, "inspector", "inspector password 1")
    row = page.locator(f".escalations tr[data-instance='{INSTANCE}']").first
    expect(row).to_contain_text("超期上报监管方")
    shot(page, "regulator-inbox")
    row.get_by_role("link").click()
    expect(page.locator("#current-step")).to_have_text("登记受理")
    expect(page.locator("form.action")).to_have_count(0)
    context.close()


SCENARIOS = {"clerk": clerk, "intruders": intruders, "admin": admin}

if __name__ == "__main__":
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ["STATFLOW_CHROMIUM"], args=CHROMIUM_ARGS)
        try:
            SCENARIOS[sys.argv[1]](browser)
        finally:
            browser.close()
    print(f"scenario {sys.argv[1]}: passed")
