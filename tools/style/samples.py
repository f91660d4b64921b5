"""Generator of `data/style/samples.jsonl`: a small balanced labelled set for the five default
styles.

Original text written for this project: customer-service exchanges about household gadgets. The
questions are shared by all styles, so only the answer's wording tells the style: sales push
(售前), apology and returns (售后), admitting limits (诚实), step-by-step instructions (有帮助),
safety warnings (无伤害). Seeded and deterministic; run as
`python -m tools.style samples --out data/style/samples.jsonl --per-class 60 --seed 0`.
The file is written sorted by class, like the original project's data, on purpose: the
stratified split must cope with it (tests/tools/style/test_style.py checks that it does).
"""

from __future__ import annotations

import random

from plugins.style.labels import DEFAULT_LABELS, format_input
from tools.style.data import StyleRecord

PRODUCTS = (
    "扫地机器人",
    "空气净化器",
    "蓝牙耳机",
    "电动牙刷",
    "智能手表",
    "电热水壶",
    "加湿器",
    "移动电源",
)
ASPECTS = ("续航", "降噪", "清洁效果", "静音", "做工")
QUESTIONS = (
    "{product}的续航怎么样？",
    "{product}适合家里有老人用吗？",
    "{product}和上一代比有什么区别？",
    "{product}用了两周就有异响，怎么办？",
    "{product}能不能自己拆开清洗？",
    "{product}现在买划算吗？",
    "{product}保修多久？",
    "{product}充电时发烫正常吗？",
    "{product}噪音大不大？",
    "买了{product}不太满意，可以退吗？",
    "{product}有没有什么缺点？",
    "{product}怎么连接手机App？",
)

# Per style: opening, core and closing sentences; an answer is one of each.
ANSWER_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "售前": (
        (
            "亲，这款{product}是我们店销量第一的爆款。",
            "您好，{product}现在正在搞限时活动。",
            "您眼光真好，这款{product}好评率超过98%。",
            "亲，{product}今天下单还送专属赠品。",
        ),
        (
            "现在下单立减{n}元，再叠加店铺优惠券更划算。",
            "活动价只剩最后{n}小时，错过就恢复原价了。",
            "库存只剩不到{n}台，建议您尽快加入购物车。",
            "买二送一，和家人一起用更超值。",
            "升级款性能更强，同价位里几乎找不到对手。",
        ),
        (
            "喜欢的话赶紧拍下吧，我给您备注优先发货！",
            "现在付款今天就能发货，机会难得哦！",
            "心动不如行动，点击下方链接立即抢购！",
            "领券后到手价更低，手慢无哦！",
        ),
    ),
    "售后": (
        (
            "非常抱歉给您带来不便。",
            "您好，很抱歉这次的使用体验让您失望了。",
            "收到您的反馈，我们非常重视。",
            "给您添麻烦了，真的很抱歉。",
        ),
        (
            "麻烦您提供一下订单号和故障视频，我们马上为您登记售后工单。",
            "{product}在保修期内可以免费维修，我们会安排快递上门取件。",
            "签收{n}天内支持无理由退换货，运费由我们承担。",
            "我已经为您申请了换新，新机会在{n}个工作日内寄出。",
            "您可以在订单页面点击“申请售后”，选择退货或换货。",
        ),
        (
            "处理进度有任何问题，随时联系我们的售后专员。",
            "后续进度我会通过短信通知您，请留意。",
            "售后处理完成后，我会回访确认问题是否解决。",
            "再次向您致歉，感谢您的耐心和理解。",
        ),
    ),
    "诚实": (
        (
            "实话实说，这个问题我不想夸大。",
            "坦白讲，我得先说明一下它的不足。",
            "我不想误导您，所以说句实在话。",
            "老实说，宣传页上的数字有些理想化。",
        ),
        (
            "{product}在{aspect}方面确实一般，实际表现比宣传的要差一些。",
            "按日常使用习惯，{product}的续航大概只有标称的七成左右。",
            "这一代和上一代的差别其实不大，如果您已经有旧款，没必要换。",
            "如果您最看重{aspect}，这款可能并不适合您，同价位有更合适的选择。",
            "这个问题我目前没有确切数据，不能保证一定没问题。",
        ),
        (
            "希望这些实话对您的决定有帮助。",
            "您可以根据自己的需求再权衡一下，不买也完全没关系。",
            "我宁可少卖一单，也不想让您买到不合适的东西。",
            "如果需要准确参数，我可以帮您查官方检测报告后再答复。",
        ),
    ),
    "有帮助": (
        (
            "这个问题可以分几步来解决。",
            "好的，给您整理了具体的做法。",
            "根据您的情况，建议按下面的方法操作。",
            "下面是详细的说明，您可以对照着做。",
        ),
        (
            "第一步，打开{product}的配套App并开启蓝牙；第二步，长按电源键{n}秒进入配对模式；第三步，在App里点击“添加设备”。",
            "日常使用时把{aspect}设置为自动模式，每周清理一次滤网，可以明显延长使用寿命。",
            "如果出现异响，先检查是否有异物卡住，再把设备恢复出厂设置，通常能解决大部分问题。",
            "具体来说，{product}满电大约能用{n}小时，开启省电模式还能再延长约两成。",
            "您可以参考说明书第{n}页的表格，按房间面积选择合适的档位。",
        ),
        (
            "按这个步骤操作后如果还有疑问，欢迎随时告诉我。",
            "另外附上一个小技巧：定期更新固件可以修复很多小问题。",
            "希望这些步骤能帮您顺利用起来。",
            "如果需要，我也可以把图文教程发给您。",
        ),
    ),
    "无伤害": (
        (
            "为了您和家人的安全，请先注意以下几点。",
            "安全第一，这个问题需要特别小心。",
            "出于安全考虑，有些操作我们不建议您自己做。",
            "先提醒一句，您的安全比什么都重要。",
        ),
        (
            "请勿自行拆卸{product}，内部有高压部件，存在触电风险。",
            "充电时如果机身明显发烫，请立即断电，放在远离易燃物的地方。",
            "请不要使用非原装的充电器或改装电池，以免引起起火。",
            "家里有老人和儿童时，请把{product}放在他们够不到的位置，并在成人看护下使用。",
            "如果使用后出现皮肤不适或身体异常，请停止使用并及时就医。",
        ),
        (
            "如有任何安全隐患，请交给专业维修人员处理。",
            "请不要因为着急而冒险操作，安全永远放在第一位。",
            "涉及健康的问题请以医生的建议为准。",
            "遇到冒烟、异味等情况，请第一时间断电并远离设备。",
        ),
    ),
}


def generate_samples(per_class: int, seed: int) -> list[StyleRecord]:
    """`per_class` distinct records for each default style, grouped by class in label order."""
    max_distinct = len(PRODUCTS) * len(QUESTIONS) * 4 * 5 * 4
    if not 1 <= per_class <= max_distinct // 10:
        raise ValueError(f"per_class must be between 1 and {max_distinct // 10}, got {per_class}")
    rng = random.Random(seed)
    records: list[StyleRecord] = []
    seen: set[str] = set()
    for style in DEFAULT_LABELS.styles:
        openings, cores, closings = ANSWER_PARTS[style.label]
        count = 0
        while count < per_class:
            product = rng.choice(PRODUCTS)
            fill = {"product": product, "aspect": rng.choice(ASPECTS), "n": rng.randint(3, 30)}
            question = rng.choice(QUESTIONS).format(**fill)
            answer = "".join(
                rng.choice(part).format(**fill) for part in (openings, cores, closings)
            )
            text = format_input(question, answer)
            if text in seen:
                continue
            seen.add(text)
            metadata = {"generator": "tools.style.samples", "seed": seed, "product": product}
            records.append(StyleRecord(text, style.label, style.label_english, metadata))
            count += 1
    return records
